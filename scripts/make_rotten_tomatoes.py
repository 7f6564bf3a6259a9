#!/usr/bin/env python
from fairseq_tokendrop.research.make_rotten_tomatoes import main

raise SystemExit(main())
