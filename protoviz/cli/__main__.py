from protoviz.cli import main

raise SystemExit(main())
