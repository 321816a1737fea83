"""One rank of a 2-process `probssl train` whose rank 0 cannot write its epoch-1 checkpoint
(ENOSPC injected after the initial checkpoint). usage: ddp_ckpt_fail_worker.py OUT"""

import errno
import os
import sys

import probssl.runs.checkpoint as ckpt
from probssl.cli import entry

real_save, calls = ckpt.save_checkpoint, []


def failing_save(*args, **kwargs):
    calls.append(1)
    if len(calls) > 1 and os.environ["RANK"] == "0":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(*args, **kwargs)


ckpt.save_checkpoint = failing_save
sys.argv = ["probssl", "train", "--method", "vae", "--dataset", "digits", "--epochs", "3",
            "--batch-size", "128", "--device", "cpu", "--no-progress", "--out", sys.argv[1]]
entry()
