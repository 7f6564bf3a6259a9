#!/usr/bin/env python
from fairseq_tokendrop.research.compare_runs import main

raise SystemExit(main())
