from pilot_envs.cli import main

raise SystemExit(main())
