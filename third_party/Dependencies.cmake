# Finds the system dependencies (Debian -dev packages) through pkg-config and exposes
# them as imported targets knob::lua, knob::cjson, knob::sqlite3, knob::curl.
# No third-party source lives in this tree.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' "
                      "(or run scripts/install-deps.sh)")
endif()

function(knob_require_pkg target module debian_pkg)
  pkg_check_modules(${target}_PC QUIET IMPORTED_TARGET ${module})
  if(NOT ${target}_PC_FOUND)
    message(FATAL_ERROR "pkg-config module '${module}' not found: install the Debian "
                        "package '${debian_pkg}' (or run scripts/install-deps.sh)")
  endif()
  add_library(knob::${target} ALIAS PkgConfig::${target}_PC)
endfunction()

knob_require_pkg(lua lua5.4 liblua5.4-dev)
knob_require_pkg(sqlite3 sqlite3 libsqlite3-dev)
knob_require_pkg(curl libcurl libcurl4-openssl-dev)

# lua-cjson is linked statically and preloaded as `cjson`, so no Lua C module search
# path is involved at run time.
pkg_check_modules(cjson_PC QUIET lua5.4-cjson)
find_library(KNOB_CJSON_STATIC NAMES liblua5.4-cjson.a HINTS ${cjson_PC_LIBDIR})
if(NOT KNOB_CJSON_STATIC)
  message(FATAL_ERROR "liblua5.4-cjson.a not found: install the Debian package "
                      "'lua-cjson-dev' (or run scripts/install-deps.sh)")
endif()
add_library(knob::cjson STATIC IMPORTED)
set_target_properties(knob::cjson PROPERTIES IMPORTED_LOCATION ${KNOB_CJSON_STATIC})

# NVTX v3 is header-only and optional: the simulated server marks its engine phases
# when the headers are found (Nsight Systems and the CUDA toolkit ship them).
find_path(KNOB_NVTX_INCLUDE_DIR nvtx3/nvToolsExt.h
  HINTS /usr/local/cuda/include /usr/include
        /usr/lib/x86_64-linux-gnu/nsight-systems/target-linux-x64/nvtx/include
        /opt/nvidia/nsight-systems/target-linux-x64/nvtx/include)
if(KNOB_NVTX_INCLUDE_DIR)
  message(STATUS "NVTX v3 headers: ${KNOB_NVTX_INCLUDE_DIR} (knobsim marks engine phases)")
else()
  message(STATUS "NVTX v3 headers not found: knobsim builds without NVTX ranges")
endif()
