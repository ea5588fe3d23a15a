"""Convert a published BOAT-Swin (or official Swin) checkpoint for mmboat.

    python tools/model_converters/boat_swin_to_mmboat.py SRC DST [--arch tiny]

SRC is in the Swin training format (weights under ``model``); a plain Swin
file becomes a BOAT-Swin initialisation. See :mod:`mmboat.converters.cli`.
"""
from mmboat.converters import cli
from mmboat.families import BOAT_SWIN


def main(argv=None):
    cli.main(BOAT_SWIN.key, argv)


if __name__ == '__main__':
    main()
