"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd run in the
foreground as this user, from a generated slurm.conf in a temporary directory (one
node with this machine's CPUs, linuxproc process tracking, no cgroups, no accounting).
Nothing of the machine's own Slurm or munge configuration is used or changed."""
import getpass
import os
import shutil
import socket
import subprocess
import tempfile

from common import reserve_port, wait_until

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def missing():
    """The Slurm and munge programs this machine lacks (in /usr/sbin too)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [d for d in DAEMONS if not shutil.which(d, path=path)]


def _which(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


CONF = """ClusterName=knobtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={dir}/munge.socket
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
KillWait=10
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=knobtest Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="knob-slurm-")
        self.procs = []
        self.host = socket.gethostname().split(".")[0]
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def _start(self, argv, log):
        with open(os.path.join(self.dir, log), "w") as out:  # the daemon keeps its own copy
            self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                               start_new_session=True))

    def start(self):
        """Starts the daemons and waits until the node takes jobs; raises with the logs
        when it never does."""
        d = self.dir
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(d, sub))
        key = os.path.join(d, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        with open(self.conf, "w") as f:
            f.write(CONF.format(host=self.host, ctld_port=reserve_port(), slurmd_port=reserve_port(),
                                user=getpass.getuser(), dir=d, cpus=os.cpu_count() or 2))
        self._start([_which("munged"), "-F", "-f", "-S", d + "/munge.socket", "--key-file=" + key,
                     "--log-file=" + d + "/munged.log", "--pid-file=" + d + "/munged.pid",
                     "--seed-file=" + d + "/munged.seed"], "munged.out")
        wait_until(lambda: os.path.exists(d + "/munge.socket"), 30, "munged's socket")
        self._start([_which("slurmctld"), "-D", "-f", self.conf], "slurmctld.out")
        self._start([_which("slurmd"), "-D", "-f", self.conf, "-N", self.host], "slurmd.out")
        try:
            wait_until(lambda: self.node_state() == "idle", 60, "the Slurm node to be idle")
        except AssertionError:
            raise AssertionError("Slurm did not start:\n" + self.logs())
        return self

    def node_state(self):
        r = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, env=self.env)
        return r.stdout.strip()

    def jobs(self, states="PENDING,RUNNING,CONFIGURING,COMPLETING"):
        """{job id: (state, job name)} of the jobs Slurm holds in these states."""
        r = subprocess.run(["squeue", "--noheader", "--states=" + states, "--format=%i|%T|%j"],
                           capture_output=True, text=True, env=self.env)
        return {l.split("|")[0]: tuple(l.split("|")[1:3]) for l in r.stdout.splitlines() if l.strip()}

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith((".log", ".out")):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append("== %s\n%s" % (name, f.read()[-3000:]))
        return "\n".join(out)

    def stop(self):
        subprocess.run(["scancel", "--user=" + getpass.getuser()], env=self.env, capture_output=True)
        try:  # the jobs' steps outlive slurmd: let them end first
            wait_until(lambda: self.jobs() == {}, 60, "every job to end")
        except AssertionError:
            pass
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
