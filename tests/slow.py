"""Which tests are slow: the ``slow`` marker that ``pytest -m "not slow"`` leaves out (conftest.py puts it on them).

The full suite (``pytest -n 2``) runs every test; ``-m "not slow"`` is the quick first check of the README
(about 3 minutes on 2 cores). A new test that takes more than a few seconds belongs here.
"""

#: The slow tests (issue 24), by module: the test functions (every case) or ``function[case-id-prefix*``
#: (those cases). Chosen from the suite's ``--durations=0`` of 2026-12-06: a function whose cases took
#: ≥ 6 s there (about 3 s on a quiet machine), one that shares a module fixture with such a function (the
#: fixture would run anyway), and the README's MNIST commands.
SLOW = {
    "test_api.py": {"test_sweep_and_explain_run_from_python"},
    "test_blocked.py": {"test_blocked_equals_per_step", "test_fit_stack_takes_the_blocked_path_to_the_per_step_result",
                        "test_exact_in_float64"},
    "test_cli.py": {"test_label_column_and_string_labels_on_the_cli"},
    "test_conventions.py": {"test_ridge_alpha_is_our_lambda"},
    "test_distributed.py": {  # a local Ray cluster (session fixture), `ray start`, killed drivers and workers
        "test_ray_sweep_equals_the_in_process_sweep", "test_every_block_is_saved_logged_and_resumable",
        "test_sklearn_cv_on_ray_scores_as_in_process", "test_a_worker_killed_mid_block_changes_nothing",
        "test_a_killed_driver_resumes_without_rerunning_finished_blocks",
        "test_cli_runs_on_a_cluster_started_with_ray_start", "test_jax_model_sweep_on_ray_equals_the_in_process_sweep",
        "test_torch_model_sweep_on_ray_equals_the_in_process_sweep"},
    "test_compile_ahead.py": {"test_the_refit_loads_what_was_compiled_while_the_cv_trained"},
    "test_engine_init.py": {"test_init_stack_equals_init_params_of_each_seed_bit_for_bit"},
    "test_explain.py": {"test_explain_run_reproduces_momentum_and_adamw_runs",
                        "test_vectorized_lambdas_equal_separate_runs_and_training",
                        "test_stateful_optimizers_lambda_zero_has_no_decay_term", "test_recorded_terms_equal_closed_forms",
                        "test_cli_explains_a_train_run_and_writes_json"},
    "test_fullbatch.py": {"test_float32_by_default_and_hidden_layers", "test_ridge_equals_sklearn",
                          "test_logistic_regression_equals_sklearn", "test_logistic_regression_equals_sklearn_on_blobs",
                          "test_vectorized_equals_a_loop_of_single_runs"},
    "test_helper.py": {  # commands in subprocesses, and a helper spawned in this one
        "test_ctrl_c_to_the_whole_group_stops_the_command_and_its_helper", "test_a_killed_command_takes_its_helper_with_it",
        "test_folds_and_figures_from_the_helper_equal_those_made_here"},
    "test_interrupts.py": {"test_ctrl_c_before_anything_is_saved_exits_130_and_leaves_the_folder_empty",  # subprocesses
                           "test_ctrl_c_at_every_saving_phase_resumes_to_the_uninterrupted_result"},  # stopped, resumed
    "test_jax_cli.py": {"test_jax_sweep_chooses_lmbda_and_writes_the_folder", "test_jax_audit_lists_every_leaf",
                        "test_jax_sweep_under_adamw_chooses_the_weight_decay"},
    "test_model_resume.py": {  # subprocess sweeps stopped and resumed, against the module's reference runs
        "test_torch_sweep_stopped_at_every_moment_resumes_to_the_same_result",
        "test_jax_sweep_stopped_in_an_epoch_resumes_to_the_same_result",
        "test_a_finished_run_is_left_alone_and_other_commands_folders_are_refused",
        "test_a_changed_option_is_refused_by_name", "test_other_commands_refuse_the_folder_naming_its_resume_command"},
    "test_jax_models.py": {"test_every_member_equals_the_plain_optax_loop", "test_batch_norm_statistics_per_member",
                           "test_a_cnn_member_equals_the_plain_loop", "test_strategies_agree_and_auto_records_its_probe",
                           "test_monitor_splits_the_update_and_changes_nothing",
                           "test_sweep_returns_the_torch_sweeps_result", "test_regression_and_dropout_per_member"},
    "test_network.py": {"test_c0_gradient_matches_finite_differences"},
    "test_optimizers.py": {"test_vectorized_optimizers_equal_separate_runs", "test_sweep_passes_the_penalty_and_optimizer_on",
                           "test_train_grid_of_eta_momentum_lambda_matches_single_runs",
                           "test_per_layer_lambda_stack_equals_separate_runs"},
    "test_readme.py": {  # the main job at its README size, the MNIST commands, the longer examples
        "test_readme_command_runs_and_its_claim_holds[python3 -m pip install*",
        "test_readme_command_runs_and_its_claim_holds[l2reg train --dataset mnist*",
        "test_readme_command_runs_and_its_claim_holds[l2reg sweep*",
        "test_readme_command_runs_and_its_claim_holds[l2reg explain --lmbda*",
        "test_readme_command_runs_and_its_claim_holds[l2reg train --optimizer lbfgs*",
        "test_readme_command_runs_and_its_claim_holds[l2reg train --dataset digits*",
        "test_readme_command_runs_and_its_claim_holds[l2reg train --seeds*",
        "test_readme_python_blocks_run[l2reg.save*", "test_readme_python_blocks_run[model = ensemble*",
        "test_readme_python_blocks_run[L2MLPClassifier*", "test_explain_run_of_a_train_folder"},
    "test_reliability.py": {"test_killed_run_resumes_to_the_uninterrupted_result",
                            "test_diverging_configuration_is_frozen_and_others_go_on",
                            "test_convex_case_larger_lambda_never_gives_larger_weights"},
    "test_report_pages.py": {"*"},  # three runs of every kind in its module fixture, and the browser pages
    "test_reproduce.py": {"test_quick_run_writes_table_plots_and_runs"},
    "test_sklearn.py": {"test_sklearn_compatible[L2MLPClassifierCV*",  # scikit-learn's estimator checks, CV
                        "test_grid_search_over_lmbda_works_and_the_cv_estimator_matches_it",
                        "test_cv_estimator_attributes_and_1se", "test_cv_estimator_eta_grid_chooses_the_best_pair_of_separate_runs",
                        "test_cv_estimator_without_etas_uses_eta", "test_cv_estimator_lmbda_is_always_lambda_values",
                        "test_regressor_one_and_several_targets"},
    "test_sweep.py": {  # killed and resumed sweeps, and the module's sweeps (small_sweep, eta_sweep)
        "test_sweep_killed_mid_cv_resumes_to_the_uninterrupted_result", "test_cli_sweep_writes_json_report_and_params",
        "test_vectorized_eta_by_lmbda_cv_equals_separate_runs", "test_resume_after_a_finished_cv_stage_goes_to_the_refit",
        "test_regression_sweep_selects_by_lowest_cost", "test_1se_picks_at_least_mins_lmbda_on_a_real_sweep",
        "test_sweep_result_rows_and_refit", "test_sweep_json_and_report_answer_the_question_with_this_runs_numbers",
        "test_sweep_histogram_legend_gives_the_tables_sum_of_squares", "test_eta_sweep_selects_the_best_non_diverged_pair",
        "test_eta_sweep_report_has_the_heat_map_and_the_table_an_eta_column",
        "test_vectorized_lmbda_by_fold_run_equals_separate_runs", "test_a_diverging_lmbda_is_marked_and_never_chosen",
        "test_no_validation_example_reaches_its_folds_training"},
    "test_torch_hf.py": {"test_every_step_recorded_once_and_split_exactly",
                         "test_one_line_when_the_trainer_decays_a_norm_and_scalars_reach_the_integrations"},
    "test_torch_models.py": {"test_sweep_records_the_strategy_in_sweep_json_and_the_report"},
    "test_torch_sweep.py": {"test_cli_sweep_and_its_bad_inputs",
                            "test_saves_the_same_files_as_the_jax_sweep"},
    "test_train.py": {"test_epochs_match_network2_style_numpy_loop", "test_vectorized_lambdas_equal_separate_runs",
                      "test_vectorized_seeds_equal_separate_runs", "test_lambda_zero_and_no_penalty_are_identical"},
}


def is_slow(module: str, name: str) -> bool:
    """Whether test ``name`` (with its case id) of ``module`` (a file name) is in :data:`SLOW`."""
    for entry in SLOW.get(module, ()):
        if entry == "*" or entry == name.split("[")[0] or (entry.endswith("*") and name.startswith(entry[:-1])):
            return True
    return False
