"""Merge the model outputs of the 310 flow into predictions, score them and write color masks.

python inference/postprocess.py --config config/X.yaml --work WORK [--results-dir DIR]
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--results-dir", default=None, help="write gray/color/overlay pictures here")
    p.add_argument("--report-dir", default=None, help="where report.md and its pictures go (default: WORK)")
    p.add_argument("--opts", nargs="*", default=[])
    a = p.parse_args(argv)
    from src.errors import PSPNetError
    from src.config import load_config
    from src.data.labels import dataset_spec
    from src.evaluation.evaluate import report
    from src.evaluation.metrics import scores_from_matrix
    from src.evaluation.offline import postprocess
    from src.evaluation.report import Gallery, write_report
    from src.logging_setup import setup_logging
    from src.paths import ensure_output_dir

    setup_logging()
    log = logging.getLogger("postprocess")
    try:
        cfg = load_config(a.config, a.opts)
        spec = dataset_spec(cfg.data.dataset, cfg.data.classes, cfg.data.class_names)
        if a.report_dir:
            ensure_output_dir(a.report_dir, "--report-dir")
        gallery = Gallery(cfg.data.classes, cfg.data.ignore_label)
        matrix = postprocess(a.work, spec, cfg.data.ignore_label, a.results_dir, gallery)
    except PSPNetError as exc:
        log.error("error: %s", exc)
        return 2
    scores = scores_from_matrix(matrix)
    for line in report(scores, spec.class_names, "310-flow"):
        log.info(line)
    out = os.path.join(a.work, "results.json")
    with open(out, "w") as f:
        json.dump({**scores.as_dict(spec.class_names), "confusion_matrix": matrix.tolist()}, f, indent=1)
    report_path = write_report(a.report_dir or a.work, scores, spec.class_names, matrix, "310-flow", spec.palette,
                               gallery, [f"Offline (310) flow over the work folder `{a.work}`."])
    log.info("results in %s; report in %s", out, report_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
