"""fairseq-train's checkpoint files written whole or not at all, and a full disk as one line.

How stock fairseq writes a save (``checkpoint_utils.save_checkpoint``, fairseq main, mid-2025):
the first file due goes through ``torch_persistent_save``: ``FILE.tmp``, then a rename, never
fsynced; a failed write is retried twice 2.5 s apart, logging a traceback each time, and the
``.tmp`` stays behind. Every other name due (``checkpoint_last.pt``, ``checkpoint_best.pt``, ...)
is then ``PathManager.copy``'d from it, i.e. ``shutil.copyfile`` onto the old file, which it
truncates first. A kill or a full disk during that copy leaves ``checkpoint_last.pt`` torn, and
with ``--no-epoch-checkpoints`` it may be the only checkpoint there is.

fairseq gives a task no hook inside a save (``get_checkpoint_dict`` runs before the first write,
``post_save`` after the last copy), so no task method can change how the files are written.
What the plugin does instead: it replaces two names that ``checkpoint_utils`` looks up when it
runs, its ``torch_persistent_save`` and its ``PathManager``, with the plugin's writer
(``checkpoint_io.atomic_torch_save``: a temporary name, fsync, rename, fsync of the directory, a
failed write as one line with nothing left behind) and a PathManager whose ``copy`` is the same
write-then-rename (``checkpoint_io.atomic_copy``). The rest stays fairseq's: remote paths (a
PathManager handler), ``--write-checkpoints-asynchronously``, and every other PathManager method.
Only ``fairseq.checkpoint_utils``'s own references change; ``fairseq.file_io.PathManager`` is
left as it is for everyone else.

Why also this, when a resume already verifies its file and falls back to the newest whole one
(``training/resume.py``): without it a torn ``checkpoint_last.pt`` exists from the kill to the
next start for every other reader (an evaluation polling it, stock fairseq, a copy to other
storage), and a full disk ends in fairseq's tracebacks with a ``.tmp`` left behind.

Installed by the task when fairseq-train starts training (``MaskedLMTokenDropTask.begin_epoch``,
before the first update and so before any save), never at import; it lasts for the process, which
is the training run.
"""
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

from .checkpoint_io import atomic_copy, atomic_torch_save


def install() -> None:
    """Route fairseq-train's checkpoint writes through the plugin's atomic ones (once per process)."""
    if isinstance(checkpoint_utils.PathManager, CheckpointPaths):
        return
    checkpoint_utils.torch_persistent_save = persistent_save(checkpoint_utils.torch_persistent_save)
    checkpoint_utils.PathManager = CheckpointPaths()


def is_local(path) -> bool:
    return isinstance(path, str) and not PathManager.path_requires_pathmanager(path)


def persistent_save(fairseq_save):
    """``torch_persistent_save`` (same arguments) writing local files with :func:`atomic_torch_save`."""
    def save(obj, filename, async_write: bool = False):
        if async_write or not is_local(filename):
            return fairseq_save(obj, filename, async_write)
        atomic_torch_save(obj, filename)
    return save


class CheckpointPaths:
    """fairseq's PathManager as ``checkpoint_utils`` sees it, with ``copy`` of local files atomic."""

    def __getattr__(self, name):
        return getattr(PathManager, name)

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not (is_local(src_path) and is_local(dst_path)):
            return PathManager.copy(src_path, dst_path, overwrite)
        atomic_copy(src_path, dst_path)  # fairseq always overwrites (overwrite=True)
        return True
