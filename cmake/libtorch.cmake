# Finds one LibTorch and takes headers, CMake packages and libraries from it alone.
#
# Order: $LIBTORCH (an unpacked libtorch folder) or Torch_DIR (-D or environment); the torch of python3
# (the active environment); the torch of the project's .venv (scripts/setup.sh makes it); the system
# (Debian libtorch-dev).
#
# TorchConfig.cmake looks for Caffe2Config.cmake and for libc10/libtorch with the system prefixes
# searched first, so a pip torch next to Debian's libtorch-dev would take Debian's (1.13) Caffe2 targets
# and libraries. For a LibTorch with its own root we therefore pin Caffe2_DIR and those libraries to
# that root before find_package(Torch), and check after it that nothing came from elsewhere.
#
# Sets NEUROPRUNE_TORCH_ROOT (empty for the system), NEUROPRUNE_TORCH_ORIGIN, NEUROPRUNE_TORCH_LIBDIR,
# NEUROPRUNE_TORCH_CUDA (the CUDA version of a CUDA build, else empty) and NEUROPRUNE_TORCH_KIND.

set(NEUROPRUNE_TORCH_ROOT "")
if(DEFINED ENV{LIBTORCH})
  get_filename_component(NEUROPRUNE_TORCH_ROOT "$ENV{LIBTORCH}" ABSOLUTE)
  set(Torch_DIR "${NEUROPRUNE_TORCH_ROOT}/share/cmake/Torch")
  set(NEUROPRUNE_TORCH_ORIGIN "LIBTORCH")
elseif(Torch_DIR OR DEFINED ENV{Torch_DIR})
  if(NOT Torch_DIR)
    set(Torch_DIR "$ENV{Torch_DIR}")
  endif()
  set(NEUROPRUNE_TORCH_ORIGIN "Torch_DIR")
else()
  foreach(python python3 "${CMAKE_SOURCE_DIR}/.venv/bin/python")
    execute_process(COMMAND ${python} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(prefix)
      set(Torch_DIR "${prefix}/Torch")
      set(NEUROPRUNE_TORCH_ORIGIN "the torch of ${python}")
      break()
    endif()
  endforeach()
  if(NOT prefix)
    set(NEUROPRUNE_TORCH_ORIGIN "the system")
  endif()
endif()
if(DEFINED ENV{NEUROPRUNE_TORCH_ORIGIN})  # scripts/setup.sh says where it found it
  set(NEUROPRUNE_TORCH_ORIGIN "$ENV{NEUROPRUNE_TORCH_ORIGIN}")
endif()
if(Torch_DIR AND NOT EXISTS "${Torch_DIR}/TorchConfig.cmake")
  message(FATAL_ERROR "neuroprune: ${Torch_DIR} holds no TorchConfig.cmake (LIBTORCH wants a libtorch folder; Torch_DIR wants <libtorch>/share/cmake/Torch)")
endif()

# A root of its own: <root>/share/cmake/Torch (a libtorch zip, a pip wheel's torch/).
if(Torch_DIR)
  get_filename_component(root "${Torch_DIR}/../../.." ABSOLUTE)
  if(EXISTS "${root}/share/cmake/Caffe2/Caffe2Config.cmake" AND EXISTS "${root}/lib")
    set(NEUROPRUNE_TORCH_ROOT "${root}")
  endif()
endif()
if(NEUROPRUNE_TORCH_ROOT)
  set(Caffe2_DIR "${NEUROPRUNE_TORCH_ROOT}/share/cmake/Caffe2" CACHE PATH "Caffe2 of the chosen LibTorch" FORCE)
  foreach(pair "TORCH_LIBRARY;torch" "c10_LIBRARY;c10" "kineto_LIBRARY;kineto" "C10_CUDA_LIBRARY;c10_cuda")
    list(GET pair 0 var)
    list(GET pair 1 name)
    unset(${var} CACHE)
    find_library(${var} ${name} PATHS "${NEUROPRUNE_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
  endforeach()
endif()

find_package(Torch REQUIRED)

# Check: every include dir and library of the chosen LibTorch lies under its root.
if(NEUROPRUNE_TORCH_ROOT)
  set(locations ${TORCH_INCLUDE_DIRS})
  foreach(lib ${TORCH_LIBRARIES})
    if(TARGET ${lib})
      get_target_property(location ${lib} IMPORTED_LOCATION_RELEASE)
      if(NOT location)
        get_target_property(location ${lib} IMPORTED_LOCATION)
      endif()
      if(location)
        list(APPEND locations "${location}")
      endif()
    elseif(IS_ABSOLUTE "${lib}" AND lib MATCHES "(torch|c10|caffe2|kineto)")
      list(APPEND locations "${lib}")
    endif()
  endforeach()
  foreach(location ${locations})
    string(FIND "${location}" "${NEUROPRUNE_TORCH_ROOT}/" at)
    if(NOT at EQUAL 0)
      message(FATAL_ERROR "neuroprune: ${location} is not part of the LibTorch at ${NEUROPRUNE_TORCH_ROOT}: two LibTorch installs are mixed")
    endif()
  endforeach()
endif()

get_filename_component(NEUROPRUNE_TORCH_LIBDIR "${TORCH_LIBRARY}" DIRECTORY)
get_filename_component(NEUROPRUNE_TORCH_LIBDIR "${NEUROPRUNE_TORCH_LIBDIR}" REALPATH)
set(NEUROPRUNE_TORCH_CUDA "")
set(NEUROPRUNE_TORCH_KIND "CPU")
if(TORCH_CUDA_LIBRARIES)
  set(NEUROPRUNE_TORCH_CUDA "${CMAKE_CUDA_COMPILER_VERSION}")  # Caffe2 checks it equals the toolkit's
  if(NOT NEUROPRUNE_TORCH_CUDA)
    set(NEUROPRUNE_TORCH_CUDA "${CUDAToolkit_VERSION}")
  endif()
  if(NOT NEUROPRUNE_TORCH_CUDA)
    set(NEUROPRUNE_TORCH_CUDA "unknown")
  endif()
  set(NEUROPRUNE_TORCH_KIND "CUDA ${NEUROPRUNE_TORCH_CUDA}")
endif()
