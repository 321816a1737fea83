from probssl.cli import entry

entry()
