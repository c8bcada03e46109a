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
    # pp.h only: the module takes pp_buf_append & co. from its host (libpp
    # in the program, ppworker itself on the workers), so that a worker does
    # not load libpp and what libpp needs.
    if(TARGET pp::pp)
        target_include_directories(${name} PRIVATE
            $<TARGET_PROPERTY:pp::pp,INTERFACE_INCLUDE_DIRECTORIES>)
    else()
        target_include_directories(${name} PRIVATE
            $<TARGET_PROPERTY:pp,INTERFACE_INCLUDE_DIRECTORIES>)
    endif()
endfunction()
