{
  "targets": [
    {
      "target_name": "r1native",
      "sources": [
        "native/addon.c",
        "native/cpu.c",
        "native/threads.c",
        "native/gemm.c",
        "native/kernels.c",
        "native/fp8.c",
        "native/grouped.c",
        "native/qgemm.c",
        "native/qsmall.c",
        "native/qpanel.c"
      ],
      "cflags": ["-O3", "-std=gnu11", "-fno-math-errno", "-fno-trapping-math", "-pthread", "-Wall", "-Wno-unused-function"],
      "cflags!": ["-O2"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O3", "-std=gnu11"] }
    }
  ]
}
