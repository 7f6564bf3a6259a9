#!/usr/bin/env python
from fairseq_tokendrop.research.checkpointing_cost import main

raise SystemExit(main())
