// Test-only stand-in for a library of MindSpore Lite's runtime/third_party (dnnl): libmindspore-lite.so
// depends on it, so the app links and runs only when the third_party folders are on the linker's and the
// loader's paths, as in the real package.
extern "C" int fake_dnnl_version() { return 2; }
