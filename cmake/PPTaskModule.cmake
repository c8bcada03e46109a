# SPDX-License-Identifier: MIT
# pp_add_task_module(NAME SOURCES...)
#
# Builds a pp task module: a shared library whose exported functions are
# pp_task functions that workers load with dlopen.  Link your program with
# it too, so that pp_submit() can be handed those functions:
#
#   pp_add_task_module(mytasks tasks.c)
#   add_executable(app app.c)
#   target_link_libraries(app PRIVATE pp::pp mytasks)
function(pp_add_task_module name)
    add_library(${name} SHARED ${ARGN})
    # Tasks are found by symbol name: they must be exported.
    set_target_properties(${name} PROPERTIES C_VISIBILITY_PRESET default)
    if(TARGET pp::pp)
        target_link_libraries(${name} PRIVATE pp::pp)
    else()
        target_link_libraries(${name} PRIVATE pp)
    endif()
endfunction()
