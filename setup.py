# The native core is built by cffi's setuptools hook, which pyproject.toml cannot declare.
from setuptools import setup

setup(cffi_modules=["src/iommubench/core/native/build_core.py:ffibuilder"])
