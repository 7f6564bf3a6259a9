#!/usr/bin/env python
from fairseq_tokendrop.commands.finetune_glue import main

raise SystemExit(main())
