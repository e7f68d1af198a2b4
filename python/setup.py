"""Builds channels_groupsvc with groupsvc's gRPC stubs generated from layer.proto.

The stubs go into the build (package ``groupsvc.v1``, which they import
themselves by that name), from ``protos/`` beside this folder, or the folder
named by CHANNELS_GROUPSVC_PROTOS. Everything else is in pyproject.toml.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROTO = "groupsvc/v1/layer.proto"


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        protos = Path(os.environ.get("CHANNELS_GROUPSVC_PROTOS",
                                     Path(__file__).resolve().parent.parent / "protos"))
        if not (protos / PROTO).is_file():
            raise SystemExit(f"channels_groupsvc: {protos / PROTO} not found; set "
                             "CHANNELS_GROUPSVC_PROTOS to the folder that holds groupsvc/v1/")
        protoc = shutil.which("protoc")
        plugin = shutil.which("grpc_python_plugin")
        if protoc is None or plugin is None:
            raise SystemExit("channels_groupsvc: building needs protoc and grpc_python_plugin "
                             "(Debian: apt-get install protobuf-compiler protobuf-compiler-grpc)")
        out = Path(self.build_lib)
        subprocess.run([protoc, f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}",
                        f"--plugin=protoc-gen-grpc_python={plugin}", str(protos / PROTO)],
                       check=True)
        for package in (out / "groupsvc", out / "groupsvc" / "v1"):
            (package / "__init__.py").touch()


setup(cmdclass={"build_py": BuildWithStubs})
