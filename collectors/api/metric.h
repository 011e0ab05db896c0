// The collectors' face to the agent; see catalog.h here.
#pragma once
#include "../metric.h"
