"""Tallystick's Flower app with faults injected, for the end-to-end fault tests.

Both halves run the real code and change only what a faulty or malicious party would:
``server`` sends some datasets bad capability tokens (``faults.json`` in the coordinator
home), ``client`` tampers with some replies or kills its node (``faults.json`` in the
node home). Both files map a dataset id to a fault name; a dataset not named is honest.
"""

import json
from pathlib import Path

FAULTS_FILE = "faults.json"


def load_faults(home: Path) -> dict[str, str]:
    """The faults to inject, by dataset id (none when ``home`` has no faults file)."""
    path = home / FAULTS_FILE
    if not path.is_file():
        return {}
    faults = json.loads(path.read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in faults.items()}
