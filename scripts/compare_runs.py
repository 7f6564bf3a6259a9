#!/usr/bin/env python
from fairseq_tokendrop.cli.compare_runs import main

raise SystemExit(main())
