// The collectors' face to the agent: the agent's include path has this
// folder and not collectors/, so it sees the table and the metric type and
// no family's internals (procfs.h, cpu.h, ...).
#pragma once
#include "../catalog.h"
