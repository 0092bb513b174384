"""Tallystick's Flower app: thin entry points into the installed ``coordinator`` and
``data_host`` packages, so that the bundle's hash pins exactly these files."""
