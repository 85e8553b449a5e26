#!/usr/bin/env python
"""Django's command-line utility for MPO Portal."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    from portal.preflight import load_settings_or_exit

    load_settings_or_exit()
    execute_from_command_line(sys.argv)
