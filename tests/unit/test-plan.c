/* vms-plan: a plan file read and checked.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vms-plan.h"
#include "vms-plan-ledger.h"

static char *dir;

static int
make_dir (void **state)
{
  dir = g_dir_make_tmp ("vms-plan-XXXXXX", NULL);
  return dir ? 0 : -1;
}

static int
remove_dir (void **state)
{
  g_autoptr (GFile) file = g_file_new_for_path (dir);
  g_autoptr (GFileEnumerator) entries = g_file_enumerate_children (
      file, G_FILE_ATTRIBUTE_STANDARD_NAME, G_FILE_QUERY_INFO_NONE, NULL, NULL);

  for (GFileInfo *info;
       entries && (info = g_file_enumerator_next_file (entries, NULL, NULL));)
    {
      g_autoptr (GFileInfo) owned = info;
      g_autoptr (GFile) child
          = g_file_get_child (file, g_file_info_get_name (info));

      g_file_delete (child, NULL, NULL);
    }
  g_file_delete (file, NULL, NULL);
  g_clear_pointer (&dir, g_free);
  return 0;
}

static char *
write_plan (const char *name, const char *text)
{
  char *path = g_build_filename (dir, name, NULL);

  assert_true (g_file_set_contents (path, text, -1, NULL));
  return path;
}

#define QMP_VM(NAME, N)                                                        \
  "[vm " NAME "]\n"                                                            \
  "source = qmp:/run/" NAME ".qmp\n"                                           \
  "dest-qmp = qmp:10.0.0.2:44" N "\n"                                          \
  "dest-uri = tcp:10.0.0.2:55" N "\n"

/* A plan of a group of two and a libvirt VM on its own, every key read. */
static void
test_plan_read (void **state)
{
  g_autofree char *path = write_plan (
      "good.plan",
      "# three VMs\n"
      "[plan]\n"
      "concurrency = 2\n"
      "bandwidth = 50M\n"
      "deadline = 2026-12-05T06:00:00Z\n"
      "max-downtime = 200\n"
      "final-sync = mirror\n"
      "state-dir = /var/lib/vmshift/plan1\n"
      "alert = /usr/local/bin/page-me --json 'ops team'\n"
      "retries = 2\n"
      "alert-timeout = 30\n"
      "sink = nbds://10.0.0.2/\n"
      "suspend = true\n"
      "on-downtime-miss = hold\n"
      "[group front]\n"
      "max-downtime = 500\n"
      "hold = 120\n" QMP_VM (
          "web1", "01") "group = front\n"
                        "max-downtime = 50\ntls = true\n" QMP_VM (
                            "web2", "02") "group = front\n"
                                          "final-sync = auto\n"
                                          "on-downtime-miss = proceed\n"
                                          "[vm db]\n"
                                          "connect = qemu+ssh://a/system\n"
                                          "domain = db\n"
                                          "dest = qemu+ssh://b/system\n"
                                          "migrate-uri = tcp://10.0.0.3\n"
                                          "persistent = true\n"
                                          "undefine-source = true\n"
                                          "sink = nbds://10.0.0.3/\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);
  VmsPlanVm *web1, *web2, *db;
  VmsPlanGroup *front;

  if (!plan)
    fail_msg ("%s", error->message);
  assert_int_equal (plan->concurrency, 2);
  assert_int_equal (plan->bandwidth, 50 * 1024 * 1024);
  assert_int_equal (g_date_time_get_hour (plan->deadline), 6);
  assert_int_equal (plan->retries, 2);
  assert_int_equal (plan->alert_timeout_s, 30);
  assert_string_equal (plan->alert[0], "/usr/local/bin/page-me");
  assert_string_equal (plan->alert[2], "ops team");
  assert_null (plan->alert[3]);
  assert_int_equal (plan->vms->len, 3);
  web1 = plan->vms->pdata[0];
  web2 = plan->vms->pdata[1];
  db = plan->vms->pdata[2];
  assert_string_equal (web1->name, "web1");
  assert_int_equal (web1->max_downtime_ms, 50);
  assert_true (web1->tls);
  assert_false (web2->tls);
  assert_true (web1->suspend && web2->suspend && db->suspend);
  assert_false (web1->insecure);
  assert_string_equal (web1->final_sync, "mirror");
  assert_int_equal (web2->max_downtime_ms, 200);
  assert_string_equal (web2->final_sync, "auto");
  assert_string_equal (web2->sink, "nbds://10.0.0.2/");
  assert_string_equal (db->domain, "db");
  assert_string_equal (db->sink, "nbds://10.0.0.3/");
  assert_string_equal (db->migrate_uri, "tcp://10.0.0.3");
  assert_true (db->persistent && db->undefine_source);
  assert_false (web1->persistent || web1->undefine_source);
  assert_true (web1->hold_on_miss && db->hold_on_miss);
  assert_false (web2->hold_on_miss);
  assert_null (db->group);
  front = vms_plan_find_group (plan, "front");
  assert_non_null (front);
  assert_int_equal (front->members->len, 2);
  assert_ptr_equal (front->members->pdata[1], web2);
  assert_int_equal (front->max_downtime_ms, 500);
  assert_int_equal (front->hold_s, 120);
}

/* Each link's budget is shared by as many of its VMs as copy at once;
 * the others share the plan's. */
static void
test_plan_links (void **state)
{
  g_autofree char *path = write_plan (
      "links.plan",
      "[plan]\nconcurrency = 2\nbandwidth = 100M\nsink = s\n"
      "[link wan]\nbandwidth = 30M\n"
      "[link dc]\nbandwidth = 10M\n" QMP_VM ("a", "01") "link = wan\n" QMP_VM (
          "b",
          "02") "link = wan\n" QMP_VM ("c",
                                       "03") "link = wan\n" QMP_VM ("d",
                                                                    "04") "link"
                                                                          " = "
                                                                          "dc"
                                                                          "\n" QMP_VM ("e",
                                                                                       "05"));
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);
  const guint64 MiB = 1024 * 1024;

  if (!plan)
    fail_msg ("%s", error->message);
  assert_int_equal (plan->links->len, 2);
  assert_int_equal (vms_plan_find_link (plan, "wan")->members->len, 3);
  /* Three on wan, two of them at once. */
  assert_int_equal (vms_plan_vm_bandwidth (plan, plan->vms->pdata[0]),
                    15 * MiB);
  /* Alone on dc. */
  assert_int_equal (vms_plan_vm_bandwidth (plan, plan->vms->pdata[3]),
                    10 * MiB);
  /* On no link: the plan's, two at once. */
  assert_int_equal (vms_plan_vm_bandwidth (plan, plan->vms->pdata[4]),
                    50 * MiB);
}

/* An estimate's order: the VMs it holds first, shortest first, matched
 * by address (as written or absolute) or domain; the rest in file order. */
static void
test_plan_run_order (void **state)
{
  g_autofree char *path = write_plan (
      "order.plan",
      "[plan]\nsink = s\nestimate = e1\n" QMP_VM ("a", "01") QMP_VM ("b", "02")
          QMP_VM ("c", "03") "[vm d]\nconnect = qemu:///system\n"
                             "domain = d\ndest = qemu+ssh://b/"
                             "system\n");
  const char *const order[]
      = { "d", "qmp:/run/c.qmp", "qmp:/elsewhere.qmp", "qmp:/run/a.qmp", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GPtrArray) file_order = NULL;

  if (!plan)
    fail_msg ("%s", error->message);
  assert_string_equal (plan->estimate, "e1");
  vms = vms_plan_run_order (plan, order);
  assert_int_equal (vms->len, 4);
  assert_string_equal (((VmsPlanVm *)vms->pdata[0])->name, "d");
  assert_string_equal (((VmsPlanVm *)vms->pdata[1])->name, "c");
  assert_string_equal (((VmsPlanVm *)vms->pdata[2])->name, "a");
  assert_string_equal (((VmsPlanVm *)vms->pdata[3])->name, "b");
  assert_int_equal (vms_plan_vm_in_order (plan->vms->pdata[1], order), -1);
  file_order = vms_plan_run_order (plan, NULL);
  assert_string_equal (((VmsPlanVm *)file_order->pdata[0])->name, "a");
}

/* The defaults of a plan that gives only its VMs. */
static void
test_plan_defaults (void **state)
{
  g_autofree char *path = write_plan (
      "small.plan", QMP_VM ("one", "01") "sink = nbd+unix:///?socket=/s\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);

  if (!plan)
    fail_msg ("%s", error->message);
  assert_int_equal (plan->concurrency, VMS_PLAN_DEFAULT_CONCURRENCY);
  assert_int_equal (plan->bandwidth, 0);
  assert_null (plan->deadline);
  assert_null (plan->alert);
  assert_int_equal (plan->alert_timeout_s, VMS_PLAN_DEFAULT_ALERT_TIMEOUT_S);
  assert_null (plan->state_dir);
  assert_int_equal (((VmsPlanVm *)plan->vms->pdata[0])->max_downtime_ms,
                    VMS_PLAN_DEFAULT_MAX_DOWNTIME_MS);
}

/* The backpressure keys: [plan]'s for every VM, each key a VM gives
 * over the plan's, the defaults of migrate's options where neither
 * says. */
static void
test_plan_backpressure (void **state)
{
  g_autofree char *path = write_plan (
      "backpressure.plan",
      "[plan]\nsink = s\nwrite-backpressure = 256K\n"
      "max-guest-latency = 40\n" QMP_VM ("inherits", "01") QMP_VM (
          "off",
          "02") "write-backpressure = off\n"
                "replication-backpressure = off\n" QMP_VM (
                    "own",
                    "03") "write-backpressure = auto\nmax-guest-latency = 10\n"
                          "replication-backpressure = auto\n");
  g_autofree char *off_path = write_plan (
      "replication-off.plan",
      "[plan]\nsink = s\nwrite-backpressure = 2M\n"
      "replication-backpressure = off\n" QMP_VM (
          "latency",
          "01") "max-guest-latency = 5\n" QMP_VM ("on",
                                                  "02") "max-guest-latency = "
                                                        "5\nreplication-"
                                                        "backpressure = "
                                                        "auto\n");
  g_autofree char *default_path = write_plan (
      "no-backpressure.plan", "[plan]\nsink = s\n" QMP_VM ("a", "01"));
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);
  g_autoptr (VmsPlan) off_plan = NULL;
  g_autoptr (VmsPlan) default_plan = NULL;
  const VmsBackpressureOptions *vm;

  if (!plan)
    fail_msg ("%s", error->message);
  vm = &((VmsPlanVm *)plan->vms->pdata[0])->backpressure;
  assert_int_equal (vm->write_backpressure, VMS_BACKPRESSURE_OPTION_RATE);
  assert_int_equal (vm->write_backpressure_rate, 256 * 1024);
  assert_int_equal (vm->max_guest_latency_ms, 40);
  vm = &((VmsPlanVm *)plan->vms->pdata[1])->backpressure;
  assert_int_equal (vm->write_backpressure, VMS_BACKPRESSURE_OPTION_OFF);
  /* off keeps replication backpressure off, the plan's latency or not,
   * and as chosen: an estimate's recommendation does not turn it on. */
  assert_int_equal (vm->max_guest_latency_ms, 0);
  assert_true (vm->replication_asked);
  vm = &((VmsPlanVm *)plan->vms->pdata[2])->backpressure;
  assert_int_equal (vm->write_backpressure, VMS_BACKPRESSURE_OPTION_AUTO);
  assert_int_equal (vm->max_guest_latency_ms, 10);

  off_plan = vms_plan_load (off_path, &error);
  if (!off_plan)
    fail_msg ("%s", error->message);
  /* The plan's off holds for a VM that gives only its latency... */
  vm = &((VmsPlanVm *)off_plan->vms->pdata[0])->backpressure;
  assert_int_equal (vm->write_backpressure, VMS_BACKPRESSURE_OPTION_RATE);
  assert_int_equal (vm->write_backpressure_rate, 2 * 1024 * 1024);
  assert_int_equal (vm->max_guest_latency_ms, 0);
  /* ... not for one that says auto. */
  vm = &((VmsPlanVm *)off_plan->vms->pdata[1])->backpressure;
  assert_int_equal (vm->max_guest_latency_ms, 5);

  default_plan = vms_plan_load (default_path, &error);
  if (!default_plan)
    fail_msg ("%s", error->message);
  vm = &((VmsPlanVm *)default_plan->vms->pdata[0])->backpressure;
  assert_int_equal (vm->write_backpressure, VMS_BACKPRESSURE_OPTION_AUTO);
  assert_int_equal (vm->write_backpressure_rate, 0);
  assert_int_equal (vm->max_guest_latency_ms, 0);
  /* Not chosen: an estimate may recommend it. */
  assert_false (vm->replication_asked);
}

/* Each mistake is refused with the section and what is wrong. */
static void
test_plan_refusals (void **state)
{
  static const struct
  {
    const char *text;
    const char *says;
  } cases[] = {
    { "[plan]\nsink = s\nconcurency = 2\n" QMP_VM ("a", "01"),
      "[plan]: unknown key 'concurency'" },
    { "[plan]\nsink = s\n[vms a]\n", "[vms a]: unknown section" },
    { "[plan]\nsink = s\n[vm a]\nsource = qmp:/a\ndest-qmp = qmp:/b\n",
      "[vm a]: a VM needs source, dest-qmp and dest-uri" },
    { "[vm a]\nconnect = qemu:///system\ndomain = a\n",
      "[vm a]: a libvirt VM needs connect, domain and dest" },
    { QMP_VM ("a", "01") "connect = qemu:///system\nsink = s\n", "not both" },
    { QMP_VM ("a", "01"), "[vm a]: no sink" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "persistent = true\n",
      "[vm a]: migrate-uri, persistent and undefine-source are for libvirt" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "group = g\n", "no [group g]" },
    { "[plan]\nsink = s\n[group g]\n" QMP_VM ("a", "01"),
      "[group g]: no VM is in it" },
    { "[plan]\nsink = s\n[group g]\n" QMP_VM ("a", "01") "group = g\n" QMP_VM (
          "b", "02") "group = g\n",
      "more than the plan's concurrency of 1" },
    { "[plan]\nsink = s\n" QMP_VM (
          "a",
          "01") "[vm b]\nsource = qmp:/run/a.qmp\ndest-qmp = x\ndest-uri = y\n",
      "[vm b]: the same source as [vm a]" },
    { "[plan]\nsink = s\n" QMP_VM ("../a", "01"), "cannot name its job" },
    { "[plan]\nsink = s\nmax-downtime = -1\n" QMP_VM ("a", "01"),
      "max-downtime wants a number of milliseconds" },
    { "[plan]\nsink = s\ndeadline = tomorrow\n" QMP_VM ("a", "01"),
      "deadline is a time like" },
    { "[plan]\nsink = s\nfinal-sync = fast\n" QMP_VM ("a", "01"),
      "final-sync is auto, pause or mirror, not 'fast'" },
    { "[plan]\nsink = s\nalert = 'unclosed\n" QMP_VM ("a", "01"),
      "[plan]: alert: " },
    { "[plan]\nsink = s\nstate-dir = relative\n" QMP_VM ("a", "01"),
      "state-dir must be an absolute path" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "on-downtime-miss = wait\n",
      "[vm a]: on-downtime-miss is proceed or hold, not 'wait'" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "link = wan\n",
      "[vm a]: no [link wan]" },
    { "[plan]\nsink = s\n[link wan]\n" QMP_VM ("a", "01") "link = wan\n",
      "[link wan]: a link needs its bandwidth" },
    { "[plan]\nsink = s\n[link wan]\nbandwidth = 1M\n" QMP_VM ("a", "01"),
      "[link wan]: no VM crosses it" },
    { "[plan]\nsink = s\n[link wan]\nbandwidth = 1M\nspeed = 2\n" QMP_VM (
          "a", "01") "link = wan\n",
      "[link wan]: unknown key 'speed'" },
    { "[plan]\nsink = s\nestimate = ../e\n" QMP_VM ("a", "01"),
      "[plan]: estimate: " },
    { "[plan]\nsink = s\ntls = maybe\n" QMP_VM ("a", "01"),
      "[plan]: tls is true or false" },
    { "[plan]\nsink = s\nwrite-backpressure = fast\n" QMP_VM ("a", "01"),
      "[plan]: write-backpressure takes auto, off or a RATE of at least 256K "
      "(bytes/s), not 'fast'" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "write-backpressure = 255K\n",
      "[vm a]: write-backpressure takes auto, off or a RATE of at least 256K "
      "(bytes/s), not '255K'" },
    { "[plan]\nsink = s\nmax-guest-latency = 0\n" QMP_VM ("a", "01"),
      "[plan]: max-guest-latency wants a number of milliseconds from 1 to "
      "60000, not '0'" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "max-guest-latency = 60001\n",
      "[vm a]: max-guest-latency wants a number of milliseconds from 1 to "
      "60000, not '60001'" },
    { "[plan]\nsink = s\nreplication-backpressure = on\n" QMP_VM ("a", "01"),
      "[plan]: replication-backpressure takes auto or off, not 'on'" },
    { "[plan]\nsink = s\nreplication-backpressure = auto\n" QMP_VM (
          "a", "01") "max-guest-latency = 5\n",
      "[plan]: replication-backpressure auto needs max-guest-latency MS: how "
      "much longer the guest's writes may take" },
    { "[plan]\nsink = s\n" QMP_VM ("a", "01") "replication-backpressure = "
                                              "auto\n",
      "[vm a]: replication-backpressure auto needs max-guest-latency MS" },
    { "[plan]\nsink = s\n", "no VM" },
    { "not a key file\n", "bad.plan: " },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = write_plan ("bad.plan", cases[i].text);
      g_autoptr (GError) error = NULL;
      g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);

      if (plan)
        fail_msg ("case %u was taken: %s", i, cases[i].text);
      assert_true (
          g_error_matches (error, VMS_PLAN_ERROR, VMS_PLAN_ERROR_INVALID));
      if (!strstr (error->message, cases[i].says))
        fail_msg ("case %u: '%s' not in: %s", i, cases[i].says, error->message);
    }
}

/* A JSON object from text, for the ledger's events. */
static JsonObject *
fields_of (const char *text)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  assert_true (json_parser_load_from_data (parser, text, -1, NULL));
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static void
note (VmsPlanLedger *ledger, const char *vm, const char *event,
      const char *text)
{
  g_autoptr (JsonObject) fields = text ? fields_of (text) : NULL;

  vms_plan_ledger_note (ledger, vm, event, fields);
}

/* What a run notes is there for the next reader; a later run's
 * migrated-earlier keeps the first run's record, a new attempt replaces
 * the last one's. */
static void
test_ledger_kept_between_runs (void **state)
{
  g_autofree char *plan = write_plan ("l.plan", "");
  g_autoptr (GError) error = NULL;
  JsonObject *record;

  {
    g_autoptr (VmsPlanLedger) ledger = vms_plan_ledger_open (dir, plan, &error);

    assert_non_null (ledger);
    note (ledger, "a", "plan-vm-start", "{\"attempt\":1}");
    note (ledger, "a", "progress", "{\"done\":5}");
    note (ledger, "a", "downtime-miss-predicted", "{\"predicted-ms\":80}");
    note (ledger, "a", "downtime-miss-predicted", "{\"predicted-ms\":60}");
    note (ledger, "a", "migrated",
          "{\"downtime-ms\":70,\"max-downtime-ms\":50,\"seconds\":12.5,"
          "\"predicted-seconds\":11.0,\"predicted-downtime-ms\":40}");
    note (ledger, "a", "plan-vm", "{\"outcome\":\"migrated\"}");
    note (ledger, "b", "plan-vm-start", "{\"attempt\":1}");
    note (ledger, NULL, "plan-group",
          "{\"group\":\"g\",\"outcome\":\"migrated\","
          "\"group-downtime-ms\":90,\"switchover-spread-ms\":20}");
  }
  {
    g_autoptr (VmsPlanLedger) ledger = vms_plan_ledger_open (dir, plan, &error);

    assert_non_null (ledger);
    note (ledger, "a", "plan-vm", "{\"outcome\":\"migrated-earlier\"}");
    note (ledger, "b", "plan-vm-start", "{\"attempt\":2}");
    record = vms_plan_ledger_vm (ledger, "a");
    assert_non_null (record);
    assert_string_equal (json_object_get_string_member (record, "outcome"),
                         "migrated");
    assert_int_equal (
        json_object_get_int_member (record, "predicted-downtime-ms"), 80);
    assert_int_equal (json_object_get_int_member (record, "downtime-ms"), 70);
    assert_int_equal (
        json_object_get_int_member (record, "estimated-downtime-ms"), 40);
    assert_true (json_object_get_int_member (record, "ended-at")
                 >= json_object_get_int_member (record, "started-at"));
    record = vms_plan_ledger_vm (ledger, "b");
    assert_int_equal (json_object_get_int_member (record, "attempt"), 2);
    assert_string_equal (json_object_get_string_member (record, "outcome"),
                         "running");
    record = vms_plan_ledger_group (ledger, "g");
    assert_int_equal (json_object_get_int_member (record, "group-downtime-ms"),
                      90);
    assert_null (vms_plan_ledger_vm (ledger, "c"));
  }
}

/* A ledger that is not JSON is refused with its path. */
static void
test_ledger_unreadable (void **state)
{
  g_autofree char *plan = write_plan ("bad-ledger.plan", "");
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlanLedger) first = vms_plan_ledger_open (dir, plan, &error);
  g_autoptr (VmsPlanLedger) second = NULL;
  g_autoptr (GDir) listing = g_dir_open (dir, 0, NULL);

  note (first, "a", "plan-vm-start", "{}");
  for (const char *name; (name = g_dir_read_name (listing));)
    if (g_str_has_prefix (name, "plan-bad-ledger.plan-"))
      {
        g_autofree char *path = g_build_filename (dir, name, NULL);

        assert_true (g_file_set_contents (path, "[1", -1, NULL));
      }
  second = vms_plan_ledger_open (dir, plan, &error);
  assert_null (second);
  assert_non_null (strstr (error->message, "plan ledger "));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plan_read),
    cmocka_unit_test (test_plan_defaults),
    cmocka_unit_test (test_plan_backpressure),
    cmocka_unit_test (test_plan_links),
    cmocka_unit_test (test_plan_run_order),
    cmocka_unit_test (test_plan_refusals),
    cmocka_unit_test (test_ledger_kept_between_runs),
    cmocka_unit_test (test_ledger_unreadable),
  };

  return cmocka_run_group_tests (tests, make_dir, remove_dir);
}
