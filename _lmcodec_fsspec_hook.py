"""Start-up hook of lmcodec (imported by lmcodec-fsspec.pth in site-packages): fsspec compression "lmz".

fsspec has no entry point for compressions. So that fsspec.open(..., compression="lmz"/"infer") works without
`import lmcodec`, this module, run at interpreter start-up, puts a finder at the front of sys.meta_path that
waits for `fsspec.compression` to be imported. For that one module it returns the spec the other finders
give, with its loader wrapped in one that registers "lmz" right after the module runs (the import system's
own extension point: a finder and a loader); then it takes itself off sys.meta_path. It imports nothing but
sys, so start-up stays cheap; lmcodec itself is imported only when an lmz file is opened.
"""
import sys

_TARGET = "fsspec.compression"


def _lmz(f, mode="rb"):
    from lmcodec.integrations.fsspec_plugin import lmz_file

    return lmz_file(f, mode)


def _register(module):
    try:
        module.register_compression("lmz", _lmz, ["lmz"], force=True)
    except Exception:  # never break fsspec's import
        pass


class _Registering:
    """A loader that runs the real one, then registers "lmz"; anything else it is asked goes to the real one."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name):  # get_source, is_package, ...: the real loader's
        return getattr(self._loader, name)


class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != _TARGET:
            return None
        try:
            sys.meta_path.remove(cls)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Registering(spec.loader)
        return spec

    @classmethod
    def invalidate_caches(cls):
        pass


def install():
    if _TARGET in sys.modules:
        _register(sys.modules[_TARGET])
    elif _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)


install()
