"""`make setup`'s first step: PYTHON is an interpreter that the set's constraints file was made for, else one line.

python tools/require_python.py SET CONSTRAINTS VERSION...
"""

import sys

set_name, constraints, *versions = sys.argv[1:]
here = "{}.{}".format(*sys.version_info[:2])
if here not in versions:
    sys.exit(
        f"make: SET={set_name} installs {constraints}, made for Python {' or '.join(versions)}, but PYTHON is "
        f"Python {here} ({sys.executable}): pass PYTHON=<a python{versions[0]}>"
    )
