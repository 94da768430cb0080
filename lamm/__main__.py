from lamm.cli import main

raise SystemExit(main())
