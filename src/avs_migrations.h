/*
 * The schema migrations from sql/, embedded at build time.
 */

#ifndef AVS_MIGRATIONS_H
#define AVS_MIGRATIONS_H

typedef struct {
    int          version;   /* PRAGMA user_version after it is applied */
    const char  *name;
    const char  *sql;
} avs_migration_t;

/* In ascending version order, terminated by an entry with name NULL. */
extern const avs_migration_t  avs_migrations[];

#endif /* AVS_MIGRATIONS_H */
