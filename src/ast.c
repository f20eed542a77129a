/* ast.c — placeholder until its stage lands. */
#include "gradc.h"
