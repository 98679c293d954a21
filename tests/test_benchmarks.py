"""The benchmark report's arithmetic: the practical peak is the best GEMM of any library, every network figure
is a ratio to it and to the theoretical peak, and the PyTorch peer is optional."""
from benchmarks.run_all import onnx_lines, peak_lines, side_by_side_lines, theoretical_peak


def _results(with_torch: bool) -> dict:
    r = {"gemm": {"numpy": {"512": 100.0, "2048": 150.0}, "mindspore": {"512": 80.0, "2048": 120.0}},
         "theory": {"cores": 2, "ghz": 2.5, "fma_units_assumed": 2, "avx512_gflops": 320.0, "avx2_gflops": 160.0},
         "inference": {"size": 473, "ms_graph_s": 3.232, "onnxruntime_s": 1.616, "onnxruntime_1thread_s": 3.232,
                       "onnxruntime_basic_s": 1.616, "ort_threads": 2, "ms_threads": 2, "ms_graph_peak_rss_gb": 2.0,
                       "rounds": [{"ms_graph_s": 3.0}, {"ms_graph_s": 3.464}]},
         "train": [{"crop": 97, "s_per_step": 1.0, "peak_rss_gb": 3.0,
                    "rounds": [{"s_per_step": 1.0}, {"s_per_step": 1.0}]}], "rounds": 2}
    if with_torch:
        r["torch"] = {"torch": "9.9", "threads": 2, "gemm_gflops": {"512": 200.0, "2048": 190.0},
                      "inference": {"inference_s": 1.616, "peak_rss_gb": 1.0,
                                    "rounds": [{"inference_s": 1.5}, {"inference_s": 1.732}]},
                      "train": [{"crop": 97, "s_per_step": 0.5, "peak_rss_gb": 1.5,
                                 "rounds": [{"s_per_step": 0.4}, {"s_per_step": 0.6}]}]}
    return r


def test_peak_is_the_best_gemm_and_ratios_follow():
    text = "\n".join(peak_lines(_results(with_torch=True)))
    assert "Practical peak: 200.0 GFLOP/s (torch.mm (9.9)" in text
    # 323.2 GFLOP in 3.232 s = 100 GFLOP/s: 50% of 200, 31% / 62% of 320 / 160
    assert "| MindSpore GRAPH | 3.232 s | 100.0 | 50% | 31% / 62% |" in text

    pair = "\n".join(side_by_side_lines(_results(with_torch=True)))
    assert "| inference 1x3x473x473 | 3.232 s | 1.616 s | 2.00x (2.00, 2.00) | 2.0 / 1.0 GB |" in pair
    assert "| training step, batch 2, crop 97, with aux | 1.0 s | 0.5 s | 2.00x (2.50, 1.67) | 3.0 / 1.5 GB |" in pair
    assert "Threads: MindSpore 2 (runtime_num_threads), PyTorch 2" in pair
    assert "use its own convolution backward" in pair  # a run without the lean_backward record
    r = _results(with_torch=True)
    r["train"][0]["lean_backward"] = True
    assert "use the lean convolution backward" in "\n".join(side_by_side_lines(r))
    ort = "\n".join(onnx_lines(_results(with_torch=True)))
    assert "| intra_op_num_threads=1, ORT_ENABLE_ALL | 3.232 | 1.00x | 2.00x |" in ort
    assert "| 2048 | 150.0 | 120.0 | 190.0 |" in text


def test_report_without_the_torch_peer():
    text = "\n".join(peak_lines(_results(with_torch=False)))
    assert "Practical peak: 150.0 GFLOP/s (numpy (BLAS)" in text
    assert "PyTorch" not in text.split("No PyTorch peer")[0] and "No PyTorch peer in this run" in text
    assert side_by_side_lines(_results(with_torch=False)) == []
    assert "| - |" in "\n".join(onnx_lines(_results(with_torch=False)))  # no PyTorch column figure


def test_theoretical_peak_from_this_cpu():
    th = theoretical_peak()
    assert th["cores"] >= 1
    if th["ghz"] and th["avx2"]:
        assert th["avx2_gflops"] == round(th["cores"] * th["ghz"] * 8 * 2 * 2, 1)


def test_memory_report_gives_the_ratio_and_names_a_refusal():
    from benchmarks.memory_probe import markdown

    refused = "ValueError: Expected more than 1 value per channel when training, got input size [1, 512, 1, 1]"
    r = {"date": "2026-01-01", "threads": 2, "cpu": {"model": "X", "cores": 2, "flags": ["avx2"]},
         "pspnet": [{"crop": 97, "batch": 2, "graph": {"s": 1.0, "step_gb": 3.0, "peak_gb": 4.0},
                     "lean": {"s": 1.2, "step_gb": 1.8, "peak_gb": 2.8},
                     "torch": {"s": 1.0, "step_gb": 1.5, "peak_gb": 2.0}},
                    {"crop": 97, "batch": 1, "graph": {"s": 0.5, "step_gb": 2.0, "peak_gb": 3.0},
                     "torch": {"error": refused}}],
         "chain": {"graph": {"step_gb": 1.0, "activations_per_conv": 15.8}, "torch": {"error": "boom"}}}
    assert "im2col" not in markdown(r)  # no sizes, no 1x1 chain: no explanation table
    r["chain"]["graph_1x1"] = {"step_gb": 0.1, "activations_per_conv": 1.4}
    r["chain"]["graph_lean"] = {"step_gb": 0.5, "activations_per_conv": 7.0}
    r["im2col"] = {"97": {"crop": 97, "gb": 0.5}}
    text = markdown(r)
    assert "| 97 | 2 | 1.0 s / 3.0 / 4.0 | 1.2 s / 1.8 / 2.8 | - | - | 1.0 s / 1.5 / 2.0 | 2.00, 1.20 |" in text
    assert "refused: BatchNorm of the 1x1 pyramid bin" in text and "| 97 | 1 |" in text
    assert "| MindSpore GRAPH, 3x3, SGD step | 1.0 | 15.8 |" in text and "| PyTorch, 3x3, SGD step | boom | boom |" in text
    assert "14.4 activations more than a 1x1 one" in text and "3.2 times its im2col matrix" in text
    assert "| MindSpore GRAPH, 3x3, SGD step, lean input gradient | 0.5 | 7.0 |" in text
    assert "(train.lean_backward) the 3x3 chain holds 7.0 activations per convolution" in text
    assert "| 97 | 2 | 0.5 | 1.50 | 3.0 |" in text and "| 97 | 1 | 0.5 |" not in text  # no PyTorch figure at batch 1


def test_conv_report_reads_onednn_names_and_weights_each_shape_by_its_count():
    from benchmarks.conv_probe import VERBOSE, markdown

    ms_line = ("onednn_verbose,v1,primitive,exec,cpu,convolution,x64:gemm:jit,forward_training,src:f32::blocked:abcd::f0 "
               "wei:f32::blocked:abcd::f0 bia:undef::undef::: dst:f32::blocked:abcd::f0,,alg:convolution_direct,"
               "mb1_ic256oc256_ih60oh60kh3sh1dh1ph2_iw60ow60kw3sw1dw1pw2,39.313")
    torch_line = ("onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,src:f32:a:blocked:aBcd8b::f0 "
                  "wei:f32:a:blocked:ABcd8b8a::f0 bia:undef::undef::: dst:f32:a:blocked:aBcd8b::f0,attr-scratchpad:user,"
                  "alg:convolution_direct,mb1_ic4096oc512_ih60oh60kh3sh1dh0ph1_iw60ow60kw3sw1dw0pw1,1093.84")
    assert VERBOSE.match(ms_line).groups() == ("x64:gemm:jit", "256", "256", "60", "3", "1", "1")
    assert VERBOSE.match(torch_line).groups() == ("jit:avx2", "4096", "512", "60", "3", "1", "0")
    assert VERBOSE.match("onednn_verbose,v1,primitive,exec,cpu,reorder,jit:blk,undef,src:f32,,1x256x60x60,2.05") is None
    row = {"in": 256, "out": 256, "kernel": 3, "stride": 1, "dilation": 2, "hw": "60x60", "count": 6,
           "ms_s": 0.075, "ms_impl": "x64:gemm:jit", "torch_s": 0.025, "torch_impl": "jit:avx2"}
    r = {"date": "2026-01-01", "cpu": {"model": "X", "cores": 2, "flags": ["avx2"]}, "size": 473, "ms_threads": 2,
         "torch_threads": 2, "rows": [row, dict(row, kernel=1, dilation=1, count=2, ms_s=0.01, torch_s=0.01)]}
    text = markdown(r)
    assert "| 256 -> 256, 3/1/2, 60x60 | 6 | 0.075 (x64:gemm:jit) | 0.025 (jit:avx2) | 3.00 | 0.300 |" in text
    assert "MindSpore 0.470 s, PyTorch 0.170 s (2.76x)." in text  # 6 x 0.075 + 2 x 0.01 vs 6 x 0.025 + 2 x 0.01
    r["rows"] = [dict(row, torch_s=None, torch_impl=None)]
    assert "| 6 | 0.075 (x64:gemm:jit) | - | - | - |" in markdown(r) and "PyTorch" not in markdown(r).split("\n")[-2]
