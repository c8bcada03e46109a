# SPDX-License-Identifier: MIT
# Run by cpack before it builds the packages (CPACK_PRE_BUILD_SCRIPTS): the
# paths compiled in (ppworker's, the multiarch libdir) are the build's
# prefix, and the configuration, unit and cache come with PP_SYSTEM_LAYOUT,
# so only such a build for /usr makes packages that work.
if(NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr" OR NOT CPACK_PP_SYSTEM_LAYOUT)
    message(FATAL_ERROR "pp: Debian packages need a build configured with "
        "-DCMAKE_INSTALL_PREFIX=/usr -DPP_SYSTEM_LAYOUT=ON (this one: prefix "
        "${CPACK_PACKAGING_INSTALL_PREFIX}, PP_SYSTEM_LAYOUT ${CPACK_PP_SYSTEM_LAYOUT}); "
        "scripts/package makes one")
endif()
