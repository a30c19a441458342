"""Ships lmcodec-fsspec.pth (the fsspec start-up hook, see _lmcodec_fsspec_hook.py) into site-packages.

pyproject.toml holds the metadata; this file only adds the .pth to regular wheels (build_py copies it into
the build directory, whose contents become the wheel's purelib) and to editable installs (editable_wheel
writes it next to the editable finder's own .pth).
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "lmcodec-fsspec.pth"
HERE = Path(__file__).parent


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            self.copy_file(str(HERE / PTH), str(Path(self.build_lib) / PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


class EditableWheelWithPth(editable_wheel):
    def _install_namespaces(self, installation_dir, pth_prefix):  # runs once, with the wheel's root directory
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copyfile(HERE / PTH, Path(installation_dir) / PTH)


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
