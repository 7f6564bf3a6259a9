#!/usr/bin/env python
from fairseq_tokendrop.research.benchmark import main

raise SystemExit(main())
