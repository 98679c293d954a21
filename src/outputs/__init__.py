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
Import each name from its module: nothing is imported here.

``tests/test_architecture.py`` fails when code outside this package writes, renames or removes files.
"""
