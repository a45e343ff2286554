# node-gyp build of the same sources as CMakeLists.txt (the main build is cmake-js).
# LibTorch is found by scripts/torch-flags.js in the same order as CMakeLists.txt:
# $LIBTORCH, $Torch_DIR, python3's torch, the project's .venv torch, the system (Debian libtorch-dev).
# nlohmann/json comes from the system include dirs (nlohmann-json3-dev) or LibTorch's own include dir.
{
  "targets": [
    {
      "target_name": "neuroprune",
      "sources": [
        "<!@(node scripts/torch-flags.js sources)"
      ],
      "include_dirs": [
        "native/core",
        "native/binding",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/torch-flags.js include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "<!@(node scripts/torch-flags.js defines)"
      ],
      # node's common.gypi defines _GLIBCXX_USE_CXX11_ABI=1: drop it when LibTorch uses the old ABI
      "defines!": [
        "<!@(node scripts/torch-flags.js undefines)"
      ],
      "library_dirs": [
        "<!@(node scripts/torch-flags.js libdirs)"
      ],
      "libraries": [
        "<!@(node scripts/torch-flags.js libs)"
      ],
      "cflags!": [ "-fno-exceptions", "-fno-rtti" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti" ],
      "cflags": [ "-fexceptions", "-frtti" ],
      "cflags_cc": [ "-std=gnu++20", "-fexceptions", "-frtti" ],
      "configurations": {
        "Release": {
          "cflags!": [ "-O3" ],
          "cflags_cc!": [ "-O3" ],
          "cflags": [ "-O2" ],
          "xcode_settings": { "GCC_OPTIMIZATION_LEVEL": "2" }
        }
      },
      "conditions": [
        ["OS!='win'", {
          # LibTorch's headers as system headers, as in the CMake build (an -I dir that is
          # also -isystem is searched as a system dir)
          "cflags": [ "<!@(node scripts/torch-flags.js isystem)" ]
        }],
        ["OS!='win' and OS!='mac'", {
          "ldflags": [ "<!@(node scripts/torch-flags.js ldflags)" ]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_ENABLE_CPP_RTTI": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "gnu++20",
            "CLANG_CXX_LIBRARY": "libc++",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CFLAGS": [ "<!@(node scripts/torch-flags.js isystem)" ],
            "OTHER_LDFLAGS": [ "<!@(node scripts/torch-flags.js ldflags)" ]
          }
        }],
        ["OS=='win'", {
          "msvs_settings": {
            "VCCLCompilerTool": {
              "ExceptionHandling": 1,
              "RuntimeTypeInfo": "true",
              "AdditionalOptions": [ "/std:c++20", "/permissive-", "/Zc:__cplusplus" ]
            }
          }
        }]
      ]
    }
  ]
}
