/* vmshift qemu-filter: the VM as a whole: who it is, whether it runs, and
 * the end of its QEMU.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* What query-uuid reports for a VM started without -uuid. */
#define VMS_VM_NO_UUID "00000000-0000-0000-0000-000000000000"

/* query-name: the VM's -name, "" when it has none; caller frees. */
char *vms_vm_query_name (VmsQmp *qmp, GError **error);

/* query-uuid: the VM's -uuid, VMS_VM_NO_UUID when it has none; caller
 * frees. */
char *vms_vm_query_uuid (VmsQmp *qmp, GError **error);

/* Wait up to timeout_ms until query-status's run state is one of states
 * (NULL-terminated, e.g. "running", "paused"); returns it (caller frees).
 * Woken by RESUME, STOP, SHUTDOWN and MIGRATION events; the state is also
 * asked again every second, for changes QEMU sends no event for (a
 * destination started with -S that finished its incoming migration goes
 * from "inmigrate" to "paused" silently when the capability "events" is
 * off). */
char *vms_vm_wait_run_state (VmsQmp *qmp, const char *const *states,
                             guint timeout_ms, GError **error);

/* cont, then wait up to timeout_ms until the VM runs.  A paused VM runs at
 * once; one still receiving a migration ("inmigrate") only once the
 * migration completes, so a short timeout fails there. */
gboolean vms_vm_resume (VmsQmp *qmp, guint timeout_ms, GError **error);

/* quit, then wait up to timeout_ms for QEMU to close the monitor, which it
 * does when it exits: on success the VM is gone, not merely told to go.
 * The client is disconnected afterwards; free it. */
gboolean vms_vm_quit (VmsQmp *qmp, guint timeout_ms, GError **error);

G_END_DECLS
