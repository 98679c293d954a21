"""The op inventory's second source of evidence: CANN's public operator definitions, beside the wheel's
registrations (which cannot show CANN's own AI Core operators)."""
from src.tools.op_inventory import cann_evidence, evidence_table, load_cann_aicore


def test_cann_lists_ai_core_definitions_the_wheel_cannot_show():
    cann = load_cann_aicore()
    assert len(cann) > 500 and not any(name.startswith("#") for name in cann)
    # CANN's documentation calls these AI Core operators; the wheel registers AI CPU kernels for some of them
    for op, found in (("BiasAdd", "BiasAdd"), ("BiasAddGrad", "BiasAddGrad"), ("ReduceMean", "ReduceMean"),
                      ("StridedSlice", "StridedSlice"), ("ArgMax", "ArgMaxV2")):
        assert cann_evidence(op, cann) == found
    assert cann_evidence("Conv2D", cann) == "Conv2DV2"  # a CANN variant of the name: the table says so
    assert cann_evidence("Dropout2D", cann) is None  # not in these two repositories: no evidence either way


def test_the_evidence_table_states_both_sources_per_primitive():
    registrations = {"aicpu": {"BiasAdd", "Dropout2D"}, "aclnn": {"Conv2D"}, "akg_ascend": set()}
    graphs = {"train": {"BiasAdd": 2, "Conv2D": 5}, "export": {"Dropout2D": 1}}
    rows = evidence_table(graphs, registrations, {"BiasAdd"})
    assert rows[2:] == ["| BiasAdd | AI CPU only | AI Core: BiasAdd |",
                        "| Conv2D | AI Core (ACLNN / AKG) | not in these sources |",
                        "| Dropout2D | AI CPU only | not in these sources |"]
