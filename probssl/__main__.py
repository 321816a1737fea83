from probssl.cli import main

raise SystemExit(main())
