{
  "targets": [
    {
      "target_name": "cowlab",
      "sources": [
        "<!@(node scripts/native-sources.cjs)"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "include_dirs": [
        "native"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "_GNU_SOURCE"
      ],
      "ldflags": [
        "-Wl,-z,now"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-fno-strict-aliasing"
      ]
    }
  ]
}
