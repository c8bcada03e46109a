# SPDX-License-Identifier: MIT
# Run by cpack before it builds the packages (CPACK_PRE_BUILD_SCRIPTS): the
# man pages in the staged files are compressed with gzip -9n, as Debian
# requires (lintian: uncompressed-manual-page) and dh_compress would do.
file(GLOB_RECURSE _pp_pages "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.[1-8]")
list(FILTER _pp_pages INCLUDE REGEX "/share/man/man[1-8]/[^/]+\\.[1-8]$")
foreach(_page IN LISTS _pp_pages)
    execute_process(COMMAND gzip -9nf "${_page}" RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "pp: gzip could not compress ${_page}")
    endif()
endforeach()
