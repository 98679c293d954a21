"""The one owner of every file the project writes: atomic writes, no symlinks followed, ownership by manifest.

Rules (README "Nothing lost"; docs/RELIABILITY.md):

- Every file goes to a temporary name in its own folder, is flushed to disk, recorded, then placed: with a
  link that cannot replace (a file that appeared meanwhile is refused), or, over an earlier own file re-checked at
  that moment, a rename. A failed write leaves the previous file (or nothing) and is one :class:`OutputPathError`.
- An output folder (:class:`OutputFolder`) is opened once; everything below it is reached through that handle and
  sub-folder handles opened without following links, so a symbolic link anywhere below is refused before
  anything is written or removed, and a FIFO where a file is expected is refused, never waited on.
- It records what this program wrote there in ``.pspnet_outputs.jsonl`` (name, size, SHA-256, the command). A
  command replaces or removes only files its own kind wrote, listed there and unchanged since; anything else in
  the folder, a user's file that collides with an output's name included, is left alone and named.
- One command at a time per output folder: an flock on ``.run.lock`` held for the command's life; the kernel lets
  it go however the holder ends, so a lock nobody holds is simply taken (the file's text names the holder, for
  messages only).

One job per module: ``errors`` (the exceptions), ``atomic`` (files placed by path: checks, atomic writes, appends,
reads, removals), ``writers`` (a third-party writer that wants a file name, given one in a private folder),
``lock`` (the flock), ``manifest`` (ownership records, command kinds), ``folder`` (OutputFolder and its views).
This package re-exports their public names; a test that replaces one patches the module that looks it up.

``tests/test_architecture.py`` fails when code outside this package writes, renames or removes files.
"""
from src.outputs.atomic import (PART, PARTIAL_RE, append_line, atomic_path, clear_log,
                                ensure_output_dir, ensure_output_file, file_sha256, free_bytes, open_append,
                                output_writes, private_folder, read_small_file, refuse_link,
                                write_bytes, write_json, write_text)
from src.outputs.errors import OutputExistsError, OutputPathError, RunLockedError, WriteFailedError
from src.outputs.folder import MARK_ATTR, OutputFolder, SubFolder, as_folder, make_folder, put_file
from src.outputs.lock import LOCK_NAME, MAX_LOCK_BYTES, acquire, read_lock, release
from src.outputs.manifest import (COMMAND_KINDS, COMPACT_SLACK, MANIFEST, MAX_MANIFEST_BYTES,
                                  command_kind, read_manifest)
from src.outputs.writers import written_file

__all__ = ["PART", "PARTIAL_RE", "append_line", "atomic_path", "clear_log", "ensure_output_dir", "ensure_output_file",
           "file_sha256", "free_bytes", "open_append", "output_writes", "private_folder", "read_small_file",
           "refuse_link", "write_bytes", "write_json", "write_text", "OutputExistsError",
           "OutputPathError", "RunLockedError", "WriteFailedError", "MARK_ATTR", "OutputFolder", "SubFolder",
           "as_folder", "make_folder", "put_file", "LOCK_NAME", "MAX_LOCK_BYTES", "acquire", "read_lock", "release",
           "COMMAND_KINDS", "COMPACT_SLACK", "MANIFEST", "MAX_MANIFEST_BYTES", "command_kind",
           "read_manifest", "written_file"]
