"""Reading and executing a notebook, for the report (:mod:`hw3lib.report`).

:func:`execute_notebook` runs a notebook from scratch in this Python's kernel (nbclient), in the
notebook's folder, and keeps the executed copy; a failing, timed-out or dead cell raises
:class:`ReportError` naming it (:func:`cell_label`). Ctrl-C or SIGTERM stops it with the kernel
shut down. :class:`ReportError` is the error of every step of the report: this module, the
export (:mod:`hw3lib.export`) and the report's own checks raise it.
"""
import asyncio
import os
import sys
import threading
from pathlib import Path

import nbformat

DEFAULT_TIMEOUT = 1800  # seconds per cell: training is the slowest cell


class ReportError(ValueError):
    """The report cannot be built; the message names the notebook, the cell and the fix."""


def read_notebook(path):
    """The notebook at ``path`` (as version 4); :class:`ReportError` naming it where it does not
    read as one (not JSON, cut short, not a notebook's structure)."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 -- nbformat raises ValueError, ValidationError, ...
        said = (str(err).splitlines() or [""])[0][:200]
        raise ReportError(f"{path} does not read as a notebook ({type(err).__name__}: {said}); "
                          "restore it (git checkout) or save it again from JupyterLab") from None


def cell_label(name, index, cell):
    """``"NAME, cell N ('its first line')"``: how a message names cell ``index`` (from 1) of
    the notebook ``name``."""
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"{name}, cell {index} ({first[:50]!r})"


def _run_interruptibly(coroutine, on_interrupt):
    """Run ``coroutine`` in a thread of its own and return its result. There asyncio (nbclient)
    cannot take SIGINT and SIGTERM over, so they stay with this thread: a KeyboardInterrupt
    here calls ``on_interrupt()``, cancels the coroutine, waits for its clean-up and is
    re-raised, whatever the coroutine raised meanwhile."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(coroutine)
    done = threading.Event()  # not Thread.join: an interrupted join can return early later

    async def run_to_the_end():  # a cancelled nbclient leaves tasks of its own: end them too
        try:
            await task
        finally:
            left = asyncio.all_tasks() - {asyncio.current_task()}
            for other in left:
                other.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    def run():
        try:
            loop.run_until_complete(run_to_the_end())
        except BaseException:  # noqa: S110 - task.result() raises it in the caller
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    try:
        done.wait()
    except KeyboardInterrupt:
        on_interrupt()
        loop.call_soon_threadsafe(task.cancel)
        done.wait()
        raise
    finally:
        loop.close()
    return task.result()


def execute_notebook(path, build_dir, timeout=DEFAULT_TIMEOUT, env=None):
    """Execute the notebook at ``path`` from scratch in this Python's kernel, with the
    notebook's folder as working directory and ``env`` as environment (default: this process's);
    write the executed copy to ``build_dir`` and return it. A failing cell raises
    :class:`ReportError` naming it. The kernel is shut down and its connection file removed,
    also when Ctrl-C or SIGTERM (a KeyboardInterrupt, re-raised) stops the execution."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets import default

    class CurrentPython(KernelSpecManager):
        """Every kernel name means ipykernel in this interpreter (this virtual environment)."""

        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}", "--IPKernelApp.log_level=ERROR"],
                              display_name="Python (hw3lib)", language="python")

    class CurrentPythonKernel(AsyncKernelManager):
        """A kernel manager of :class:`CurrentPython`; given as a class, not an instance, so that
        nbclient owns it: it shuts the kernel down and removes its connection file."""

        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return CurrentPython(data_dir=self.data_dir)

    path = Path(path)
    nb = read_notebook(path)
    current = {}
    client = NotebookClient(
        nb, timeout=timeout, kernel_manager_class=CurrentPythonKernel,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=lambda cell, cell_index: current.update(cell=cell, index=cell_index + 1))
    at = lambda: cell_label(path.name, current["index"], current["cell"])  # noqa: E731

    async def execute():
        try:
            await client.async_execute(env=dict(os.environ) if env is None else env)
        finally:  # nbclient shuts its kernel down, unless cancelled while starting it
            if client.km is not None and client.km.has_kernel:
                await client.km.shutdown_kernel(now=True)

    def kill_kernel_at_once():  # no graceful shutdown (and no ZMQ traceback) mid-cell
        client.shutdown_kernel = "immediate"

    try:
        _run_interruptibly(execute(), on_interrupt=kill_kernel_at_once)
    except CellExecutionError as err:
        raise ReportError(f"{at()} raised {err.ename}: {err.evalue}; run the notebook in "
                          "JupyterLab to see the traceback and fix it") from None
    except CellTimeoutError:
        raise ReportError(f"{at()} ran longer than {timeout} s; raise the limit with "
                          "--timeout") from None
    except DeadKernelError:
        raise ReportError(f"the kernel died in {at()} (out of memory?); run the notebook in "
                          "JupyterLab to find out") from None
    build_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, build_dir / path.name)
    return nb
