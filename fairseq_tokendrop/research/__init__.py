"""Research tools: the benchmark, run comparison plots, the GPU check and the demo corpus (plots need the \`research\` extra)."""
