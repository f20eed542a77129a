/* main.c — placeholder until the command line lands. */
#include "gradc.h"
int main(void) { return 0; }
