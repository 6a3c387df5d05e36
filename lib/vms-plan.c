/* vmshift: a migration plan, read from its file.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan.h"
#include "vms-job.h"
#include "vms-migrate-state.h"
#include "vms-option.h"
#include "vms-path.h"

#include <string.h>

G_DEFINE_QUARK (vms - plan - error - quark, vms_plan_error)

/* Typo guards. */
#define MAX_CONCURRENCY 1000
#define MAX_DOWNTIME_MS 2000000
#define MAX_RATE (G_GUINT64_CONSTANT (1) << 40)
#define MAX_RETRIES 100
#define MAX_HOLD_S (24 * 3600)

#define VM_PREFIX "vm "
#define GROUP_PREFIX "group "
#define LINK_PREFIX "link "
#define MAX_ALERT_TIMEOUT_S (24 * 3600)

static const char *const plan_keys[] = { "concurrency",
                                         "bandwidth",
                                         "deadline",
                                         "max-downtime",
                                         "final-sync",
                                         "state-dir",
                                         "alert",
                                         "retries",
                                         "alert-timeout",
                                         "sink",
                                         "tls",
                                         "insecure",
                                         "suspend",
                                         "on-downtime-miss",
                                         "estimate",
                                         "write-backpressure",
                                         "max-guest-latency",
                                         "replication-backpressure",
                                         NULL };
static const char *const vm_keys[] = { "group",
                                       "source",
                                       "dest-qmp",
                                       "dest-uri",
                                       "connect",
                                       "domain",
                                       "dest",
                                       "sink",
                                       "link",
                                       "on-downtime-miss",
                                       "max-downtime",
                                       "final-sync",
                                       "tls",
                                       "insecure",
                                       "suspend",
                                       "migrate-uri",
                                       "persistent",
                                       "undefine-source",
                                       "write-backpressure",
                                       "max-guest-latency",
                                       "replication-backpressure",
                                       NULL };
static const char *const group_keys[] = { "max-downtime", "hold", NULL };
static const char *const link_keys[] = { "bandwidth", NULL };

static void
vm_free (VmsPlanVm *vm)
{
  g_free (vm->name);
  g_free (vm->group);
  g_free (vm->link);
  g_free (vm->source);
  g_free (vm->dest_qmp);
  g_free (vm->dest_uri);
  g_free (vm->connect);
  g_free (vm->domain);
  g_free (vm->migrate_uri);
  g_free (vm->dest);
  g_free (vm->sink);
  g_free (vm->final_sync);
  g_free (vm);
}

static void
group_free (VmsPlanGroup *group)
{
  g_free (group->name);
  g_ptr_array_unref (group->members);
  g_free (group);
}

static void
link_free (VmsPlanLink *link)
{
  g_free (link->name);
  g_ptr_array_unref (link->members);
  g_free (link);
}

void
vms_plan_free (VmsPlan *plan)
{
  if (!plan)
    return;
  g_free (plan->path);
  g_clear_pointer (&plan->deadline, g_date_time_unref);
  g_free (plan->final_sync);
  g_free (plan->state_dir);
  g_free (plan->estimate);
  g_strfreev (plan->alert);
  g_ptr_array_unref (plan->vms);
  g_ptr_array_unref (plan->groups);
  g_ptr_array_unref (plan->links);
  g_free (plan);
}

VmsPlanGroup *
vms_plan_find_group (const VmsPlan *plan, const char *name)
{
  for (guint i = 0; i < plan->groups->len; i++)
    {
      VmsPlanGroup *group = plan->groups->pdata[i];

      if (g_str_equal (group->name, name))
        return group;
    }
  return NULL;
}

VmsPlanLink *
vms_plan_find_link (const VmsPlan *plan, const char *name)
{
  for (guint i = 0; i < plan->links->len; i++)
    {
      VmsPlanLink *link = plan->links->pdata[i];

      if (g_str_equal (link->name, name))
        return link;
    }
  return NULL;
}

guint64
vms_plan_vm_bandwidth (const VmsPlan *plan, const VmsPlanVm *vm)
{
  const VmsPlanLink *link
      = vm->link ? vms_plan_find_link (plan, vm->link) : NULL;

  if (link)
    return MAX (link->bandwidth
                    / MIN (plan->concurrency, (guint64)link->members->len),
                1024);
  if (plan->bandwidth)
    return MAX (plan->bandwidth / plan->concurrency, 1024);
  return 0;
}

/* The same QMP address, as written or made absolute. */
static gboolean
same_address (const char *a, const char *b)
{
  g_autofree char *absolute_a = NULL;
  g_autofree char *absolute_b = NULL;

  if (g_str_equal (a, b))
    return TRUE;
  absolute_a = vms_path_absolute_qmp_address (a);
  absolute_b = vms_path_absolute_qmp_address (b);
  return absolute_a && absolute_b && g_str_equal (absolute_a, absolute_b);
}

int
vms_plan_vm_in_order (const VmsPlanVm *vm, const char *const *order)
{
  for (int i = 0; order && order[i]; i++)
    if (vm->domain ? g_str_equal (vm->domain, order[i])
                   : same_address (vm->source, order[i]))
      return i;
  return -1;
}

typedef struct
{
  const VmsPlanVm *vm;
  int position; /* in the estimate's order, G_MAXINT: not in it */
  guint index;  /* in the file */
} Placed;

static gint
compare_placed (gconstpointer a, gconstpointer b)
{
  const Placed *x = a, *y = b;

  if (x->position != y->position)
    return x->position < y->position ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

GPtrArray *
vms_plan_run_order (const VmsPlan *plan, const char *const *order)
{
  g_autoptr (GArray) placed
      = g_array_sized_new (FALSE, FALSE, sizeof (Placed), plan->vms->len);
  GPtrArray *vms = g_ptr_array_sized_new (plan->vms->len);

  for (guint i = 0; i < plan->vms->len; i++)
    {
      int position = vms_plan_vm_in_order (plan->vms->pdata[i], order);
      Placed one
          = { plan->vms->pdata[i], position < 0 ? G_MAXINT : position, i };

      g_array_append_val (placed, one);
    }
  g_array_sort (placed, compare_placed);
  for (guint i = 0; i < placed->len; i++)
    g_ptr_array_add (vms, (gpointer)g_array_index (placed, Placed, i).vm);
  return vms;
}

/* ---- reading ---- */

/* The file's key file and its path, for messages. */
typedef struct
{
  GKeyFile *file;
  const char *path;
} Reader;

static gboolean G_GNUC_PRINTF (4, 5)
    invalid (const Reader *reader, const char *section, GError **error,
             const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, VMS_PLAN_ERROR, VMS_PLAN_ERROR_INVALID, "%s: [%s]: %s",
               reader->path, section, text);
  return FALSE;
}

/* The key's value, or NULL when it is not there. */
static char *
get (const Reader *reader, const char *section, const char *key)
{
  return g_key_file_get_string (reader->file, section, key, NULL);
}

static gboolean
check_keys (const Reader *reader, const char *section,
            const char *const *allowed, GError **error)
{
  g_auto (GStrv) keys = g_key_file_get_keys (reader->file, section, NULL, NULL);

  for (guint i = 0; keys && keys[i]; i++)
    if (!g_strv_contains (allowed, keys[i]))
      return invalid (reader, section, error, "unknown key '%s'", keys[i]);
  return TRUE;
}

/* A number key through the options' checked parser, which names it. */
typedef gboolean (*NumberParser) (const char *option, const char *text,
                                  guint64 minimum, guint64 maximum,
                                  guint64 *out, GError **error);

static gboolean
get_number (const Reader *reader, const char *section, const char *key,
            NumberParser parse, guint64 minimum, guint64 maximum, guint64 *out,
            GError **error)
{
  g_autofree char *text = get (reader, section, key);
  g_autoptr (GError) local = NULL;

  if (!parse (key, text, minimum, maximum, out, &local))
    return invalid (reader, section, error, "%s", local->message);
  return TRUE;
}

static gboolean
parse_milliseconds (const char *option, const char *text, guint64 minimum,
                    guint64 maximum, guint64 *out, GError **error)
{
  return vms_option_integer (option, text, "a number of milliseconds", minimum,
                             maximum, out, error);
}

static gboolean
get_final_sync (const Reader *reader, const char *section, char **out,
                GError **error)
{
  g_autofree char *text = get (reader, section, "final-sync");
  VmsMigrateFinalSync mode;

  if (text && !vms_migrate_final_sync_parse (text, &mode))
    return invalid (reader, section, error,
                    "final-sync is auto, pause or mirror, not '%s'", text);
  if (text)
    {
      g_free (*out);
      *out = g_steal_pointer (&text);
    }
  return TRUE;
}

/* on-downtime-miss: hold (*hold TRUE) or proceed, *hold kept when the
 * key is not there. */
static gboolean
get_on_miss (const Reader *reader, const char *section, gboolean *hold,
             GError **error)
{
  g_autofree char *text = get (reader, section, "on-downtime-miss");

  if (!text)
    return TRUE;
  if (!g_str_equal (text, "hold") && !g_str_equal (text, "proceed"))
    return invalid (reader, section, error,
                    "on-downtime-miss is proceed or hold, not '%s'", text);
  *hold = g_str_equal (text, "hold");
  return TRUE;
}

/* The key in section, else in fallback (NULL: none). */
static char *
get_over (const Reader *reader, const char *section, const char *fallback,
          const char *key)
{
  char *text = get (reader, section, key);

  return text || !fallback ? text : get (reader, fallback, key);
}

/* The backpressure keys, each the section's over fallback's, checked
 * together as migrate checks its options of those names: [plan] alone,
 * a VM with the plan's keys it does not give. */
static gboolean
get_backpressure (const Reader *reader, const char *section,
                  const char *fallback, VmsBackpressureOptions *out,
                  GError **error)
{
  g_autofree char *write
      = get_over (reader, section, fallback, "write-backpressure");
  g_autofree char *latency
      = get_over (reader, section, fallback, "max-guest-latency");
  g_autofree char *replication
      = get_over (reader, section, fallback, "replication-backpressure");
  const VmsBackpressureOptionText text = { write, latency, replication };
  g_autoptr (GError) local = NULL;

  if (!vms_backpressure_options_parse ("", &text, out, &local))
    return invalid (reader, section, error, "%s", local->message);
  return TRUE;
}

/* A true or false key, *out kept when it is not there. */
static gboolean
get_boolean (const Reader *reader, const char *section, const char *key,
             gboolean *out, GError **error)
{
  g_autoptr (GError) local = NULL;
  gboolean value;

  if (!g_key_file_has_key (reader->file, section, key, NULL))
    return TRUE;
  value = g_key_file_get_boolean (reader->file, section, key, &local);
  if (local)
    return invalid (reader, section, error, "%s is true or false", key);
  *out = value;
  return TRUE;
}

static gboolean
read_deadline (const Reader *reader, VmsPlan *plan, GError **error)
{
  g_autofree char *text = get (reader, "plan", "deadline");

  if (!text)
    return TRUE;
  /* An absolute time, with its zone: the plan may be run again later. */
  plan->deadline = g_date_time_new_from_iso8601 (text, NULL);
  if (!plan->deadline)
    return invalid (reader, "plan", error,
                    "deadline is a time like 2026-12-05T06:00:00Z (ISO "
                    "8601, with its zone), not '%s'",
                    text);
  return TRUE;
}

static gboolean
read_alert (const Reader *reader, VmsPlan *plan, GError **error)
{
  g_autofree char *text = get (reader, "plan", "alert");
  g_autoptr (GError) local = NULL;

  if (!text)
    return TRUE;
  /* Split into words as a shell would, but run without one. */
  if (!g_shell_parse_argv (text, NULL, &plan->alert, &local))
    return invalid (reader, "plan", error, "alert: %s", local->message);
  return TRUE;
}

static gboolean
read_plan_section (const Reader *reader, VmsPlan *plan, GError **error)
{
  /* Checked here to name [plan]; each VM reads the keys it does not
   * give from there. */
  VmsBackpressureOptions backpressure;

  plan->concurrency = VMS_PLAN_DEFAULT_CONCURRENCY;
  plan->alert_timeout_s = VMS_PLAN_DEFAULT_ALERT_TIMEOUT_S;
  plan->max_downtime_ms = VMS_PLAN_DEFAULT_MAX_DOWNTIME_MS;
  plan->final_sync = g_strdup ("auto");
  if (!g_key_file_has_group (reader->file, "plan"))
    return TRUE;
  if (!check_keys (reader, "plan", plan_keys, error)
      || !get_number (reader, "plan", "concurrency", vms_option_count, 1,
                      MAX_CONCURRENCY, &plan->concurrency, error)
      || !get_number (reader, "plan", "bandwidth", vms_option_rate, 1024,
                      MAX_RATE, &plan->bandwidth, error)
      || !get_number (reader, "plan", "max-downtime", parse_milliseconds, 1,
                      MAX_DOWNTIME_MS, &plan->max_downtime_ms, error)
      || !get_number (reader, "plan", "retries", vms_option_count, 0,
                      MAX_RETRIES, &plan->retries, error)
      || !get_number (reader, "plan", "alert-timeout", vms_option_seconds, 1,
                      MAX_ALERT_TIMEOUT_S, &plan->alert_timeout_s, error)
      || !get_final_sync (reader, "plan", &plan->final_sync, error)
      || !get_on_miss (reader, "plan", &plan->hold_on_miss, error)
      || !get_boolean (reader, "plan", "tls", &plan->tls, error)
      || !get_boolean (reader, "plan", "insecure", &plan->insecure, error)
      || !get_boolean (reader, "plan", "suspend", &plan->suspend, error)
      || !get_backpressure (reader, "plan", NULL, &backpressure, error)
      || !read_deadline (reader, plan, error)
      || !read_alert (reader, plan, error))
    return FALSE;
  plan->state_dir = get (reader, "plan", "state-dir");
  plan->estimate = get (reader, "plan", "estimate");
  if (plan->state_dir && !g_path_is_absolute (plan->state_dir))
    return invalid (reader, "plan", error,
                    "state-dir must be an absolute path, not '%s'",
                    plan->state_dir);
  if (plan->estimate)
    {
      g_autoptr (GError) local = NULL;

      if (!vms_job_id_is_valid (plan->estimate, &local))
        return invalid (reader, "plan", error, "estimate: %s", local->message);
    }
  return TRUE;
}

/* QMP or libvirt, complete, not both. */
static gboolean
check_endpoints (const Reader *reader, const char *section, const VmsPlanVm *vm,
                 GError **error)
{
  gboolean qmp = vm->source || vm->dest_qmp || vm->dest_uri;
  gboolean libvirt = vm->connect || vm->domain || vm->dest;

  if (qmp && libvirt)
    return invalid (reader, section, error,
                    "give source, dest-qmp and dest-uri (QEMU driven "
                    "directly) or connect, domain and dest (libvirt), not "
                    "both");
  if (libvirt && !(vm->connect && vm->domain && vm->dest))
    return invalid (reader, section, error,
                    "a libvirt VM needs connect, domain and dest");
  if (!libvirt && !(vm->source && vm->dest_qmp && vm->dest_uri))
    return invalid (reader, section, error,
                    "a VM needs source, dest-qmp and dest-uri (or connect, "
                    "domain and dest for libvirt)");
  if (!libvirt && (vm->migrate_uri || vm->persistent || vm->undefine_source))
    return invalid (reader, section, error,
                    "migrate-uri, persistent and undefine-source are for "
                    "libvirt VMs (a QEMU driven directly has dest-uri)");
  if (!vm->sink)
    return invalid (reader, section, error,
                    "no sink: give sink here or in [plan]");
  return TRUE;
}

static VmsPlanVm *
read_vm (const Reader *reader, const VmsPlan *plan, const char *section,
         const char *sink, GError **error)
{
  VmsPlanVm *vm = g_new0 (VmsPlanVm, 1);
  g_autoptr (GError) local = NULL;

  vm->name = g_strdup (section + strlen (VM_PREFIX));
  vm->group = get (reader, section, "group");
  vm->link = get (reader, section, "link");
  vm->source = get (reader, section, "source");
  vm->dest_qmp = get (reader, section, "dest-qmp");
  vm->dest_uri = get (reader, section, "dest-uri");
  vm->connect = get (reader, section, "connect");
  vm->domain = get (reader, section, "domain");
  vm->dest = get (reader, section, "dest");
  vm->migrate_uri = get (reader, section, "migrate-uri");
  vm->sink = get (reader, section, "sink");
  if (!vm->sink)
    vm->sink = g_strdup (sink);
  vm->max_downtime_ms = plan->max_downtime_ms;
  vm->final_sync = g_strdup (plan->final_sync);
  vm->tls = plan->tls;
  vm->insecure = plan->insecure;
  vm->suspend = plan->suspend;
  vm->hold_on_miss = plan->hold_on_miss;
  if (!vms_job_id_is_valid (vm->name, &local))
    invalid (reader, section, error, "'%s' cannot name its job: %s", vm->name,
             local->message);
  else if (check_keys (reader, section, vm_keys, error)
           && get_boolean (reader, section, "persistent", &vm->persistent,
                           error)
           && get_boolean (reader, section, "undefine-source",
                           &vm->undefine_source, error)
           && check_endpoints (reader, section, vm, error)
           && get_number (reader, section, "max-downtime", parse_milliseconds,
                          1, MAX_DOWNTIME_MS, &vm->max_downtime_ms, error)
           && get_final_sync (reader, section, &vm->final_sync, error)
           && get_on_miss (reader, section, &vm->hold_on_miss, error)
           && get_boolean (reader, section, "tls", &vm->tls, error)
           && get_boolean (reader, section, "insecure", &vm->insecure, error)
           && get_boolean (reader, section, "suspend", &vm->suspend, error)
           && get_backpressure (reader, section, "plan", &vm->backpressure,
                                error))
    return vm;
  vm_free (vm);
  return NULL;
}

static VmsPlanGroup *
read_group (const Reader *reader, const char *section, GError **error)
{
  VmsPlanGroup *group = g_new0 (VmsPlanGroup, 1);

  group->name = g_strdup (section + strlen (GROUP_PREFIX));
  group->members = g_ptr_array_new ();
  group->hold_s = VMS_PLAN_DEFAULT_HOLD_S;
  if (*group->name && check_keys (reader, section, group_keys, error)
      && get_number (reader, section, "max-downtime", parse_milliseconds, 1,
                     MAX_DOWNTIME_MS, &group->max_downtime_ms, error)
      && get_number (reader, section, "hold", vms_option_seconds, 1, MAX_HOLD_S,
                     &group->hold_s, error))
    return group;
  if (!*group->name)
    invalid (reader, section, error, "a group needs a name: [group NAME]");
  group_free (group);
  return NULL;
}

static VmsPlanLink *
read_link (const Reader *reader, const char *section, GError **error)
{
  VmsPlanLink *link = g_new0 (VmsPlanLink, 1);

  link->name = g_strdup (section + strlen (LINK_PREFIX));
  link->members = g_ptr_array_new ();
  if (!*link->name)
    invalid (reader, section, error, "a link needs a name: [link NAME]");
  else if (!g_key_file_has_key (reader->file, section, "bandwidth", NULL))
    invalid (reader, section, error,
             "a link needs its bandwidth, the budget its VMs share");
  else if (check_keys (reader, section, link_keys, error)
           && get_number (reader, section, "bandwidth", vms_option_rate, 1024,
                          MAX_RATE, &link->bandwidth, error))
    return link;
  link_free (link);
  return NULL;
}

/* [link NAME] sections, before the VMs that name them. */
static gboolean
read_links (const Reader *reader, VmsPlan *plan, char **sections,
            GError **error)
{
  for (guint i = 0; sections[i]; i++)
    {
      VmsPlanLink *link;

      if (!g_str_has_prefix (sections[i], LINK_PREFIX))
        continue;
      if (!(link = read_link (reader, sections[i], error)))
        return FALSE;
      if (vms_plan_find_link (plan, link->name))
        {
          link_free (link);
          return invalid (reader, sections[i], error,
                          "a second link of that name");
        }
      g_ptr_array_add (plan->links, link);
    }
  return TRUE;
}

/* The same VM twice would be migrated twice at once. */
static gboolean
check_unique (const Reader *reader, const VmsPlan *plan, const VmsPlanVm *vm,
              GError **error)
{
  g_autofree char *section = g_strconcat (VM_PREFIX, vm->name, NULL);

  for (guint i = 0; i < plan->vms->len; i++)
    {
      const VmsPlanVm *other = plan->vms->pdata[i];

      if (g_str_equal (other->name, vm->name))
        return invalid (reader, section, error, "a second VM named %s",
                        vm->name);
      if ((vm->source && g_strcmp0 (other->source, vm->source) == 0)
          || (vm->domain && g_strcmp0 (other->connect, vm->connect) == 0
              && g_strcmp0 (other->domain, vm->domain) == 0))
        return invalid (reader, section, error,
                        "the same source as [vm %s]: a VM migrates once",
                        other->name);
    }
  return TRUE;
}

static gboolean
read_sections (const Reader *reader, VmsPlan *plan, GError **error)
{
  g_auto (GStrv) sections = g_key_file_get_groups (reader->file, NULL);
  g_autofree char *sink = get (reader, "plan", "sink");

  if (!read_links (reader, plan, sections, error))
    return FALSE;
  /* Groups first: VMs name them. */
  for (guint i = 0; sections[i]; i++)
    if (g_str_has_prefix (sections[i], GROUP_PREFIX))
      {
        VmsPlanGroup *group = read_group (reader, sections[i], error);

        if (!group)
          return FALSE;
        if (vms_plan_find_group (plan, group->name))
          {
            group_free (group);
            return invalid (reader, sections[i], error,
                            "a second group "
                            "of that name");
          }
        g_ptr_array_add (plan->groups, group);
      }
  for (guint i = 0; sections[i]; i++)
    {
      VmsPlanVm *vm;
      VmsPlanGroup *group = NULL;
      VmsPlanLink *link = NULL;

      if (g_str_equal (sections[i], "plan")
          || g_str_has_prefix (sections[i], GROUP_PREFIX)
          || g_str_has_prefix (sections[i], LINK_PREFIX))
        continue;
      if (!g_str_has_prefix (sections[i], VM_PREFIX))
        return invalid (reader, sections[i], error,
                        "unknown section: [plan], [vm NAME], [group NAME] "
                        "and [link NAME] are");
      vm = read_vm (reader, plan, sections[i], sink, error);
      if (!vm)
        return FALSE;
      if ((vm->group && !(group = vms_plan_find_group (plan, vm->group)))
          || (vm->link && !(link = vms_plan_find_link (plan, vm->link))))
        {
          invalid (reader, sections[i], error, "no [%s %s]",
                   vm->group && !group ? "group" : "link",
                   vm->group && !group ? vm->group : vm->link);
          vm_free (vm);
          return FALSE;
        }
      if (!check_unique (reader, plan, vm, error))
        {
          vm_free (vm);
          return FALSE;
        }
      g_ptr_array_add (plan->vms, vm);
      if (group)
        g_ptr_array_add (group->members, vm);
      if (link)
        g_ptr_array_add (link->members, vm);
    }
  return TRUE;
}

static gboolean
check_whole (const Reader *reader, const VmsPlan *plan, GError **error)
{
  if (!plan->vms->len)
    return invalid (reader, "plan", error, "no VM: add a [vm NAME] section");
  for (guint i = 0; i < plan->groups->len; i++)
    {
      const VmsPlanGroup *group = plan->groups->pdata[i];
      g_autofree char *section = g_strconcat (GROUP_PREFIX, group->name, NULL);

      if (!group->members->len)
        return invalid (reader, section, error,
                        "no VM is in it (a VM joins with group = %s)",
                        group->name);
      /* Members replicate at once to switch over together. */
      if (group->members->len > plan->concurrency)
        return invalid (
            reader, section, error,
            "its %u VMs switch over together and so copy at "
            "once, more than the plan's concurrency of %" G_GUINT64_FORMAT,
            group->members->len, plan->concurrency);
    }
  for (guint i = 0; i < plan->links->len; i++)
    {
      const VmsPlanLink *link = plan->links->pdata[i];
      g_autofree char *section = g_strconcat (LINK_PREFIX, link->name, NULL);

      if (!link->members->len)
        return invalid (reader, section, error,
                        "no VM crosses it (a VM does with link = %s)",
                        link->name);
    }
  return TRUE;
}

VmsPlan *
vms_plan_load (const char *path, GError **error)
{
  g_autoptr (GKeyFile) file = g_key_file_new ();
  g_autoptr (VmsPlan) plan = g_new0 (VmsPlan, 1);
  g_autoptr (GError) local = NULL;
  Reader reader = { file, path };

  plan->path = g_strdup (path);
  plan->vms = g_ptr_array_new_with_free_func ((GDestroyNotify)vm_free);
  plan->groups = g_ptr_array_new_with_free_func ((GDestroyNotify)group_free);
  plan->links = g_ptr_array_new_with_free_func ((GDestroyNotify)link_free);
  if (!g_key_file_load_from_file (file, path, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, VMS_PLAN_ERROR, VMS_PLAN_ERROR_INVALID, "%s: %s",
                   path, local->message);
      return NULL;
    }
  if (!read_plan_section (&reader, plan, error)
      || !read_sections (&reader, plan, error)
      || !check_whole (&reader, plan, error))
    return NULL;
  return g_steal_pointer (&plan);
}
