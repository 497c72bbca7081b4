from judgecal.cli import main

raise SystemExit(main())
