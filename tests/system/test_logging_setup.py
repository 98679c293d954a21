"""src.system.logging_setup: the entry points' logging (setup_logging: timestamped lines on stderr, other ranks
tagged), each rank's own log file name (log_file_name), and the log files a command appends to and closes at its
end (add_log_stream, close_log_files)."""
import logging
import re

from src.system.logging_setup import add_log_stream, close_log_files, log_file_name, setup_logging


def test_rank_0_keeps_the_name_and_other_ranks_get_their_own():
    assert log_file_name("train.log") == log_file_name("train.log", 0) == "train.log"
    assert log_file_name("train.log", 3) == "train.rank3.log"
    assert log_file_name("logs/eval.txt", 12) == "logs/eval.rank12.txt"
    assert log_file_name("log", 1) == "log.rank1"
    assert len({log_file_name("train.log", r) for r in range(8)}) == 8


def test_setup_logging_writes_timestamped_lines_to_stderr_and_tags_other_ranks(root_logging, capsys):
    setup_logging(rank=2, level=logging.WARNING)
    assert root_logging.level == logging.WARNING and len(root_logging.handlers) == 1
    logging.getLogger("src.test").info("not shown")
    logging.getLogger("src.test").warning("shown")
    err = capsys.readouterr().err
    assert re.fullmatch(r"\d\d:\d\d:\d\d \[rank 2\] shown\n", err), err
    setup_logging()  # again, as rank 0: replaces the handler instead of adding a second one
    logging.getLogger("src.test").info("once")
    assert re.fullmatch(r"\d\d:\d\d:\d\d once\n", capsys.readouterr().err)


def test_a_log_stream_gets_dated_lines_until_closed(root_logging, tmp_path):
    root_logging.setLevel(logging.INFO)
    path = tmp_path / "train.rank1.log"
    stream = open(path, "a", encoding="utf-8")
    before = list(root_logging.handlers)
    add_log_stream(stream, rank=1)
    logging.getLogger("src.train").info("epoch 1 done")
    close_log_files()
    assert stream.closed and root_logging.handlers == before
    logging.getLogger("src.train").info("after the command")  # reaches no file any more
    line, = path.read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO \[rank 1\] src\.train: epoch 1 done", line), line


def test_close_log_files_leaves_other_handlers_alone(root_logging, tmp_path):
    root_logging.setLevel(logging.INFO)
    other = logging.StreamHandler(open(tmp_path / "other.log", "a", encoding="utf-8"))
    root_logging.addHandler(other)
    add_log_stream(open(tmp_path / "a.log", "a", encoding="utf-8"))
    add_log_stream(open(tmp_path / "b.log", "a", encoding="utf-8"))
    logging.getLogger("src").warning("both")
    close_log_files()
    assert other in root_logging.handlers and not other.stream.closed
    other.close()
    other.stream.close()
    for name in ("a.log", "b.log"):
        assert (tmp_path / name).read_text().rstrip().endswith("WARNING src: both")  # rank 0: no tag
