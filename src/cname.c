/* cname.c — which names a compiled program's functions may take.
 *
 * `gradc compile` defines three global symbols, NAME, NAME_grad and
 * NAME_work_size, in an object that is linked into someone else's program,
 * and declares them in a header that C and C++ include.  A name that is a
 * keyword breaks the header; `main` or a name of the C library (exp,
 * malloc, ...) replaces that function in the whole program it links into
 * (or LLVM renames the definition, so the header declares a symbol that
 * does not exist); a gradc_ name collides with the runtime.  Such names are
 * refused; docs/language.md lists the rules. */
#include "gradc.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* C11/C23 and C++ keywords and the type names the header uses. */
static const char *const keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "bool", "true", "false", "nullptr",
    "alignas", "alignof", "constexpr", "static_assert", "thread_local", "typeof",
    "typeof_unqual", "class", "delete", "new", "private", "protected", "public", "template",
    "this", "throw", "try", "catch", "namespace", "operator", "virtual", "friend", "mutable",
    "using", "explicit", "export", "typename", "decltype", "noexcept", "concept", "requires",
    "co_await", "co_return", "co_yield", "const_cast", "dynamic_cast", "reinterpret_cast",
    "static_cast", "typeid", "wchar_t", "char8_t", "char16_t", "char32_t", "asm", "and",
    "and_eq", "bitand", "bitor", "compl", "not", "not_eq", "or", "or_eq", "xor", "xor_eq",
    "size_t", "int64_t", NULL,
};

/* The C standard library (C11 and common POSIX/glibc functions a program
 * may call); math functions also with their f and l suffixes. */
static const char *const math_names[] = {
    "acos", "asin", "atan", "atan2", "cos", "sin", "tan", "acosh", "asinh", "atanh", "cosh",
    "sinh", "tanh", "exp", "exp2", "exp10", "expm1", "frexp", "ilogb", "ldexp", "log", "log10",
    "log1p", "log2", "logb", "modf", "scalbn", "scalbln", "cbrt", "fabs", "hypot", "pow",
    "pow10", "sqrt", "erf", "erfc", "lgamma", "tgamma", "gamma", "ceil", "floor", "nearbyint",
    "rint", "lrint", "llrint", "round", "lround", "llround", "trunc", "fmod", "remainder",
    "remquo", "copysign", "nan", "nextafter", "nexttoward", "fdim", "fmax", "fmin", "fma",
    "fpclassify", "isfinite", "isinf", "isnan", "isnormal", "signbit", "isgreater",
    "isgreaterequal", "isless", "islessequal", "islessgreater", "isunordered", "j0", "j1",
    "jn", "y0", "y1", "yn", "drem", "significand", "sincos", "finite", NULL,
};

static const char *const libc_names[] = {
    "main", "assert", "errno", "isalnum", "isalpha", "isblank", "iscntrl", "isdigit",
    "isgraph", "islower", "isprint", "ispunct", "isspace", "isupper", "isxdigit", "tolower",
    "toupper", "feclearexcept", "fegetexceptflag", "feraiseexcept", "fesetexceptflag",
    "fetestexcept", "fegetround", "fesetround", "fegetenv", "feholdexcept", "fesetenv",
    "feupdateenv", "imaxabs", "imaxdiv", "strtoimax", "strtoumax", "setlocale", "localeconv",
    "setjmp", "longjmp", "signal", "raise", "va_start", "va_arg", "va_end", "va_copy",
    "remove", "rename", "tmpfile", "tmpnam", "fclose", "fflush", "fopen", "freopen", "setbuf",
    "setvbuf", "fprintf", "fscanf", "printf", "scanf", "snprintf", "sprintf", "sscanf",
    "vfprintf", "vfscanf", "vprintf", "vscanf", "vsnprintf", "vsprintf", "vsscanf", "fgetc",
    "fgets", "fputc", "fputs", "getc", "getchar", "gets", "putc", "putchar", "puts", "ungetc",
    "fread", "fwrite", "fgetpos", "fseek", "fsetpos", "ftell", "rewind", "clearerr", "feof",
    "ferror", "perror", "stdin", "stdout", "stderr", "fileno", "popen", "pclose", "getline",
    "atof", "atoi", "atol", "atoll", "strtod", "strtof", "strtold", "strtol", "strtoll",
    "strtoul", "strtoull", "rand", "srand", "aligned_alloc", "calloc", "free", "malloc",
    "realloc", "abort", "atexit", "at_quick_exit", "exit", "_Exit", "getenv", "quick_exit",
    "system", "bsearch", "qsort", "abs", "labs", "llabs", "div", "ldiv", "lldiv", "mblen",
    "mbtowc", "wctomb", "mbstowcs", "wcstombs", "posix_memalign", "setenv", "unsetenv",
    "memcpy", "memmove", "strcpy", "strncpy", "strcat", "strncat", "memcmp", "strcmp",
    "strcoll", "strncmp", "strxfrm", "memchr", "strchr", "strcspn", "strpbrk", "strrchr",
    "strspn", "strstr", "strtok", "memset", "strerror", "strlen", "strdup", "strndup",
    "clock", "difftime", "mktime", "time", "asctime", "ctime", "gmtime", "localtime",
    "strftime", "timespec_get", "open", "close", "read", "write", "lseek", "dup", "dup2",
    "pipe", "fork", "execv", "execvp", "kill", "sleep", "usleep", "getpid", "select", "poll",
    "mmap", "munmap", "stat", "fstat", "lstat", "unlink", "link", "access", "chdir", "environ",
    NULL,
};

static bool listed(const char *const *list, const char *s, size_t len)
{
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == len && strncmp(list[i], s, len) == 0)
            return true;
    return false;
}

bool c_keyword(const char *s) { return listed(keywords, s, strlen(s)); }

static bool is_identifier(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || isalnum((unsigned char)*s)) || (unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Why one symbol may not be defined, or NULL. */
static const char *symbol_problem(const char *s)
{
    size_t len = strlen(s);
    if (c_keyword(s))
        return "is a C or C++ keyword";
    if (strcmp(s, "main") == 0)
        return "would define the program's main";
    if (listed(math_names, s, len) ||
        (len > 1 && (s[len - 1] == 'f' || s[len - 1] == 'l') && listed(math_names, s, len - 1)))
        return "is a function of the C math library";
    if (listed(libc_names, s, len))
        return "is a name of the C standard library";
    if (strncasecmp(s, "gradc_", 6) == 0 || strcasecmp(s, "runtime") == 0)
        return "belongs to the gradc runtime";
    if (s[0] == '_' && (s[1] == '_' || isupper((unsigned char)s[1])))
        return "is reserved to the C implementation (it starts with __ or _ and a capital)";
    return NULL;
}

const char *c_name_problem(Arena *a, const char *name)
{
    if (!is_identifier(name))
        return "is not a C identifier (letters, digits and _, not starting with a digit)";
    const char *why = symbol_problem(name);
    if (why)
        return why;
    static const char *const derived[] = {"_grad", "_work_size"};
    for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++) {
        const char *sym = arena_printf(a, "%s%s", name, derived[i]);
        if ((why = symbol_problem(sym)))
            return arena_printf(a, "gives the function %s, which %s", sym, why);
    }
    return NULL;
}
