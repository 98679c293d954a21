"""Tests of src/outputs/manifest.py: the record of what this program wrote in a folder (.pspnet_outputs.jsonl),
read back by path. Records appended through an OutputFolder and its removals read back; a line cut short, or glued
to the next record, recovered record by record; hand-edited names that leave the folder skipped; a file mostly of
other records, a link, a FIFO, a hard-linked or oversized file in its place refused and left alone; and the command
kinds whose outputs are one another's."""
import hashlib
import json
import logging
import os

import pytest

from src.outputs.errors import OutputPathError
from src.outputs.folder import OutputFolder
from src.outputs.manifest import MANIFEST, MAX_MANIFEST_BYTES, command_kind, read_manifest


def _rec(name):
    return json.dumps({"name": name, "kind": "file", "size": 1, "command": "eval"})


def test_records_written_through_a_folder_are_read_back_by_path(tmp_path):
    with OutputFolder(tmp_path, "--out", "eval") as folder:
        folder.put_text("a.txt", "A")
        folder.put_text("sub/b.txt", "BB")
        folder.put_text("gone.txt", "x")
        assert folder.remove("gone.txt")
    records = read_manifest(tmp_path)
    assert sorted(records) == ["a.txt", "sub/b.txt"]
    assert records["sub/b.txt"]["sha256"] == hashlib.sha256(b"BB").hexdigest() and records["sub/b.txt"]["size"] == 2
    assert {r["command"] for r in records.values()} == {"eval"}
    assert read_manifest(tmp_path / "never_made") == {}


def test_a_cut_short_line_is_skipped_and_records_glued_to_it_are_recovered(tmp_path, caplog):
    lines = [_rec("a"), _rec("b")[:15] + _rec("c"), _rec("d")[:10], _rec("e"), json.dumps({"name": "a", "removed": 1})]
    (tmp_path / MANIFEST).write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="src.outputs.manifest"):
        assert sorted(read_manifest(tmp_path)) == ["c", "e"]
    assert "skipped 2 unreadable record(s)" in caplog.text


def test_hand_edited_names_that_leave_the_folder_are_not_records(tmp_path):
    good = [_rec(n) for n in ("a", "sub/b", "c", "d", "e")]
    bad = [_rec("../up"), _rec("/etc/passwd"), _rec("a/./b"), json.dumps({"name": 5}), _rec("x\0y")]
    (tmp_path / MANIFEST).write_text("\n".join(good + bad) + "\n")
    assert sorted(read_manifest(tmp_path)) == ["a", "c", "d", "e", "sub/b"]


def test_a_file_mostly_of_other_records_is_refused_and_left_alone(tmp_path):
    """Another program's JSON lines under the manifest's name: not read as an empty manifest and appended to."""
    text = '{"name": null, "id": 1}\n{"name": ["x"]}\n' + _rec("a") + "\n"
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(OutputPathError, match="2 of its 3 lines are no record of this program"):
        read_manifest(tmp_path)
    assert (tmp_path / MANIFEST).read_text() == text



def test_a_users_text_file_under_the_manifests_name_is_refused_and_never_appended_to(tmp_path):
    """Plain text holds no record at all: those lines count as unreadable (they once read as an empty manifest,
    and the folder's first output appended a record to the user's file)."""
    text = "my notes\nabout this folder\n"
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(OutputPathError, match="2 of its 2 lines are no record of this program"):
        read_manifest(tmp_path)
    with pytest.raises(OutputPathError, match="no record of this program"):
        with OutputFolder(tmp_path, "--out", "predict") as folder:
            folder.put_bytes("a.png", b"a")
    assert (tmp_path / MANIFEST).read_text() == text and not (tmp_path / "a.png").exists()

@pytest.mark.parametrize("kind,match", [("link", "cannot read it \\(a symbolic link\\)"),
                                        ("fifo", "is not a regular file"),
                                        ("hardlink", "has another name linked to it"),
                                        ("huge", f"is larger than {MAX_MANIFEST_BYTES >> 20} MiB")])
def test_what_is_no_manifest_in_its_place_is_refused(tmp_path, kind, match):
    manifest = tmp_path / MANIFEST
    if kind == "link":
        manifest.symlink_to(tmp_path / "elsewhere.jsonl")
    elif kind == "fifo":
        os.mkfifo(manifest)
    elif kind == "hardlink":
        (tmp_path / "users.jsonl").write_text(_rec("a") + "\n")
        os.link(tmp_path / "users.jsonl", manifest)
    else:
        with open(manifest, "wb") as f:
            f.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: no disk used
    with pytest.raises(OutputPathError, match=match) as info:
        read_manifest(tmp_path)
    assert str(tmp_path / MANIFEST) in str(info.value) and not (tmp_path / "elsewhere.jsonl").exists()


def test_command_kinds_group_the_commands_that_share_a_folder():
    flow = {command_kind(c) for c in ("preprocess", "infer", "postprocess", "flow310")}
    assert len(flow) == 1 and flow != {command_kind("eval")}
    assert command_kind("report") == command_kind("eval")  # a report rewrites what eval wrote
    assert command_kind("train") == "train" and command_kind("predict") == "predict"
    assert command_kind(None) is None and command_kind(3) is None  # a record without a command is nobody's
