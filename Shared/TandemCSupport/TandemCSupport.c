// TandemCSupport is header-only (static inline helpers in include/TandemCSupport.h); SwiftPM
// needs one source file per C target.
#include "TandemCSupport.h"
