# SPDX-License-Identifier: MIT
# Debian packages with CPack: `cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr -DPP_SYSTEM_LAYOUT=ON (scripts/package does
# both) makes
#   libpp0      libpp.so.0 and ppworker (every libpp program's local workers)
#   libpp-dev   pp.h, libpp.a, the libpp.so link, pp.pc, the CMake package,
#               the library's man pages
#   ppserver    the node: ppserver, ppstat, /etc/pp/ppserver.conf (a
#               conffile), the systemd unit, the ppserver system user (made
#               by its postinst) and its cache, /var/cache/ppserver
#   pp-demos    pp-fib and pp-crawl with their task modules (kept apart so
#               that a node does not pull in libcurl and gumbo)
# The prefix is compiled in (ppworker's path, the multiarch libdir), so a
# build for /usr/local cannot be packaged: cpack then stops with a message.

option(PP_SYSTEM_LAYOUT "Install as the Debian packages do: also /etc/pp/ppserver.conf, \
the unit in /lib/systemd/system, /var/cache/ppserver (needs CMAKE_INSTALL_PREFIX=/usr)" OFF)
set(PP_PACKAGE_MAINTAINER "pp maintainers <pp@example.org>" CACHE STRING
    "Maintainer field of the Debian packages (Name <address>)")
if(PP_SYSTEM_LAYOUT AND NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    message(FATAL_ERROR "PP_SYSTEM_LAYOUT needs CMAKE_INSTALL_PREFIX=/usr")
endif()
set(_pp_libpkg libpp${PROJECT_VERSION_MAJOR})

# ---- the systemd unit, conf/ppserver.service with ExecStart= naming the
# installed ppserver.  Without PP_SYSTEM_LAYOUT it goes to
# PREFIX/lib/systemd/system (systemd reads /usr/local/lib/systemd/system);
# with it, to /lib/systemd/system, as the package's, without DynamicUser=:
# the package makes the user (postinst). ----
set(_pp_unit_src ${PROJECT_SOURCE_DIR}/conf/ppserver.service)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_pp_unit_src})
file(READ ${_pp_unit_src} _pp_unit)
# A unit that no longer names /usr/local/bin/ppserver would be installed
# pointing at the wrong program, so say so now.
string(FIND "${_pp_unit}" "\nExecStart=/usr/local/bin/ppserver " _pp_at)
if(_pp_at EQUAL -1)
    message(FATAL_ERROR "conf/ppserver.service: no 'ExecStart=/usr/local/bin/ppserver '"
        " line for cmake/Packaging.cmake to point at ${CMAKE_INSTALL_FULL_BINDIR}")
endif()
string(REPLACE "\nExecStart=/usr/local/bin/ppserver "
    "\nExecStart=${CMAKE_INSTALL_FULL_BINDIR}/ppserver " _pp_unit "${_pp_unit}")
if(PP_SYSTEM_LAYOUT)
    string(REPLACE "\nDynamicUser=yes\n" "\n" _pp_unit "${_pp_unit}")
    set(_pp_unit_dir /lib/systemd/system)
else()
    set(_pp_unit_dir lib/systemd/system)
endif()
file(WRITE ${CMAKE_BINARY_DIR}/ppserver.service "${_pp_unit}")
install(FILES ${CMAKE_BINARY_DIR}/ppserver.service DESTINATION ${_pp_unit_dir}
        COMPONENT ppserver)

if(PP_SYSTEM_LAYOUT)
    install(FILES ${PROJECT_SOURCE_DIR}/conf/ppserver.conf DESTINATION /etc/pp
            COMPONENT ppserver)
    install(DIRECTORY DESTINATION /var/cache/ppserver COMPONENT ppserver)
    # Debian wants a copyright file and a changelog in each package's docs,
    # and the packages' lintian overrides (each one says why).
    set(_pp_docs ${CMAKE_BINARY_DIR}/debian-docs)
    file(MAKE_DIRECTORY ${_pp_docs})
    # SOURCE_DATE_EPOCH, when set, gives the date (scripts/package sets it to
    # the last commit's), so that rebuilt packages are the same bytes.
    string(TIMESTAMP _pp_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
    configure_file(${PROJECT_SOURCE_DIR}/cmake/deb/changelog.in ${_pp_docs}/changelog @ONLY)
    execute_process(COMMAND gzip -9nf ${_pp_docs}/changelog RESULT_VARIABLE _pp_rc)
    if(NOT _pp_rc EQUAL 0)
        message(FATAL_ERROR "gzip could not compress ${_pp_docs}/changelog")
    endif()
    foreach(_comp libpp libpp-dev ppserver pp-demos)
        set(_pkg ${_comp})
        if(_comp STREQUAL "libpp")
            set(_pkg ${_pp_libpkg})
        endif()
        install(FILES ${PROJECT_SOURCE_DIR}/cmake/deb/copyright ${_pp_docs}/changelog.gz
                DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_pkg} COMPONENT ${_comp})
        if(EXISTS ${PROJECT_SOURCE_DIR}/cmake/deb/${_pkg}.lintian-overrides)
            install(FILES ${PROJECT_SOURCE_DIR}/cmake/deb/${_pkg}.lintian-overrides
                    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides
                    RENAME ${_pkg} COMPONENT ${_comp})
        endif()
    endforeach()
endif()

# ---- CPack ----
set(CPACK_PACKAGE_NAME pp)
set(CPACK_PACKAGE_VENDOR "pp")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPack would put it before each
# component's own summary (the first line of its description).
set(CPACK_PACKAGE_CONTACT "${PP_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/packages)
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/deb/check_prefix.cmake
    ${PROJECT_SOURCE_DIR}/cmake/deb/compress_man.cmake)
set(CPACK_PP_SYSTEM_LAYOUT ${PP_SYSTEM_LAYOUT})

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL libpp libpp-dev ppserver)
if(PP_BUILD_EXAMPLES)
    list(APPEND CPACK_COMPONENTS_ALL pp-demos)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR}/lib)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# One source for all four (lintian then takes /usr/lib/<triplet>/pp, where
# the demos' task modules are, for the packages' private directory).
set(CPACK_DEBIAN_PACKAGE_SOURCE pp)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(_pp_exact "(= ${PROJECT_VERSION})")

set(CPACK_DEBIAN_LIBPP_PACKAGE_NAME ${_pp_libpkg})
set(CPACK_DEBIAN_LIBPP_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIBPP_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/cmake/deb/libpp0/triggers)
# libpp0's shlibs file (CPack makes it only for libraries with a soname:
# libpp.so.0, not the demos' task modules).
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_COMPONENT_LIBPP_DESCRIPTION "pp: cluster job server for C (shared library)
libpp runs C functions as jobs on local worker processes and on ppserver
nodes, over TLS 1.3 keyed by a shared secret. This package has the shared
library and ppworker, the worker process it starts.")

set(CPACK_DEBIAN_LIBPP-DEV_PACKAGE_NAME libpp-dev)
set(CPACK_DEBIAN_LIBPP-DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_LIBPP-DEV_PACKAGE_DEPENDS "${_pp_libpkg} ${_pp_exact}")
set(CPACK_COMPONENT_LIBPP-DEV_DESCRIPTION "pp: cluster job server for C (development files)
libpp runs C functions as jobs on local worker processes and on ppserver
nodes. This package has pp.h, the static library, the pkg-config file
(pp.pc) and the CMake package (find_package(pp), pp_add_task_module).")

set(CPACK_DEBIAN_PPSERVER_PACKAGE_NAME ppserver)
set(CPACK_DEBIAN_PPSERVER_PACKAGE_SECTION net)
# libmicrohttpd12: loaded with dlopen() by --metrics (ppserver/mhd.h), so
# dpkg-shlibdeps cannot see it.
set(CPACK_DEBIAN_PPSERVER_PACKAGE_DEPENDS "adduser, libmicrohttpd12, ${_pp_libpkg} ${_pp_exact}")
set(CPACK_DEBIAN_PPSERVER_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/cmake/deb/ppserver/conffiles
    ${PROJECT_SOURCE_DIR}/cmake/deb/ppserver/postinst
    ${PROJECT_SOURCE_DIR}/cmake/deb/ppserver/prerm
    ${PROJECT_SOURCE_DIR}/cmake/deb/ppserver/postrm)
set(CPACK_COMPONENT_PPSERVER_DESCRIPTION "pp: cluster job server for C (node)
ppserver runs the jobs of libpp programs on this machine's worker
processes. The package adds the ppserver system user, the module cache in
/var/cache/ppserver and a systemd unit, not enabled: create the secret
(ppserver --gen-secret /etc/pp/secret), then systemctl enable --now ppserver.")

set(CPACK_DEBIAN_PP-DEMOS_PACKAGE_NAME pp-demos)
set(CPACK_DEBIAN_PP-DEMOS_PACKAGE_SECTION net)
# dpkg-shlibdeps knows no package for the libpp.so.0 of the build tree.
set(CPACK_DEBIAN_PP-DEMOS_PACKAGE_DEPENDS "${_pp_libpkg} ${_pp_exact}")
set(CPACK_COMPONENT_PP-DEMOS_DESCRIPTION "pp: cluster job server for C (demo programs)
pp-fib computes Fibonacci terms and pp-crawl crawls a web site, as pp jobs
on local workers and on ppserver nodes.")

include(CPack)
