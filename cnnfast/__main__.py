"""``python -m cnnfast``: print the runtime report (ISAs, kernels, threads); ``python -m cnnfast demo
[options]`` runs the LeNet/MNIST training demo (same as ``python -m cnnfast.demo``)."""

import sys
from collections.abc import Sequence


def _main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "demo":
        from .demo import main

        main(argv[1:])
        return 0
    if argv and argv[0] not in ("-h", "--help"):
        print(
            f"python -m cnnfast: unknown command {argv[0]!r}; use no argument (runtime report) or 'demo'",
            file=sys.stderr,
        )
        return 2
    import cnnfast

    if argv:
        print(__doc__)
        return 0
    cnnfast.show_runtime()
    print("\nTry: python -m cnnfast.demo   (trains LeNet on 5,000 real MNIST digits; --help for options)")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
