"""Convert a published BOAT-CSWin (or official CSWin) checkpoint for mmboat.

    python tools/model_converters/boat_cswin_to_mmboat.py SRC DST [--ema]

SRC is in the timm training format (``state_dict``, ``state_dict_ema``); a
plain CSWin file becomes a BOAT-CSWin initialisation. See
:mod:`mmboat.converters.cli`.
"""
from mmboat.converters import cli
from mmboat.families import BOAT_CSWIN


def main(argv=None):
    cli.main(BOAT_CSWIN.key, argv)


if __name__ == '__main__':
    main()
